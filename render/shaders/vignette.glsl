// effect: vignette
// Darkens toward the corners, pulling the eye to the centre (and hiding a projector's soft edges).
// param amount 0 1 0  darkness in the corners (1 = black)
// param radius 0.1 1.5 0.75  where darkening is complete (1 = the corners)
// param softness 0.01 1 0.5  width of the fade toward `radius`
uniform float amount;
uniform float radius;
uniform float softness;
void main() {
    vec3 c = texture(u_source, v_uv).rgb;
    vec2 p = (v_uv - 0.5) * u_resolution;
    float d = length(p) / length(0.5 * u_resolution);     // 0 centre, 1 corner
    float shade = 1.0 - amount * smoothstep(radius - softness, radius, d);
    f_color = vec4(c * shade, 1.0);
}
