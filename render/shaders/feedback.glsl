// effect: feedback
// Trails: the previous display frame, zoomed and turned a little, fades under the new one. The
// brighter of the two wins, so moving light leaves a comet tail.
// param decay 0 1 0  how much of the trail survives each frame (0 = no trails)
// param zoom 0.8 1.25 1  trail growth per frame (>1 streams outwards)
// param rotate -10 10 0  trail rotation per frame, degrees clockwise
uniform float decay;
uniform float zoom;
uniform float rotate;
void main() {
    vec3 src = texture(u_source, v_uv).rgb;
    vec2 p = rotate_px((v_uv - 0.5) * u_resolution, -rotate) / zoom;
    vec2 uv = p / u_resolution + 0.5;
    vec3 trail = vec3(0.0);
    if (all(greaterThanEqual(uv, vec2(0.0))) && all(lessThanEqual(uv, vec2(1.0)))) {
        trail = texture(u_history, uv).rgb * decay;
    }
    f_color = vec4(max(src, trail), 1.0);
}
