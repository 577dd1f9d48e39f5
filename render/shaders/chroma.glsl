// effect: chroma
// Chromatic aberration: red and blue pulled apart radially, as through a cheap lens.
// param amount 0 0.05 0  channel offset at the picture's edge, in picture widths
uniform float amount;
void main() {
    vec2 d = (v_uv - 0.5) * amount * 2.0;
    float r = texture(u_source, v_uv + d).r;
    float g = texture(u_source, v_uv).g;
    float b = texture(u_source, v_uv - d).b;
    f_color = vec4(r, g, b, 1.0);
}
