// effect: feedback
// Trails: the previous display frame, zoomed and turned a little, fades under the new one. The
// brighter of the two wins, so moving light leaves a comet tail. "Brighter" is judged on
// luminance and the winner keeps its whole colour: a per-channel max would mix the hues of
// successive frames toward white and wash the picture out.
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
    const vec3 luma = vec3(0.2126, 0.7152, 0.0722);  // Rec. 709, linear light
    float ahead = dot(trail, luma) - dot(src, luma);
    f_color = vec4(mix(src, trail, smoothstep(-0.01, 0.01, ahead)), 1.0);
}
