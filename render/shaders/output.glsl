// effect: output
// Always last (added when a chain leaves it out): fades to black and encodes linear light to
// sRGB bytes for the display and video files, optionally with dither against banding.
// param fade 0 1 0  master fade to black (1 = black)
// param dither 0 1 0  random +-0.5 step noise before rounding to 8 bits (1 = full)
uniform float fade;
uniform float dither;
void main() {
    vec3 c = texture(u_source, v_uv).rgb * (1.0 - fade);
    vec3 s = clamp(linear_to_srgb(c), 0.0, 1.0);
    if (dither > 0.0) {
        float n = fract(sin(dot(gl_FragCoord.xy + fract(u_time) * 61.0, vec2(12.9898, 78.233))) * 43758.5453);
        s = clamp(s + (n - 0.5) * dither / 255.0, 0.0, 1.0);
    }
    f_color = vec4(s, 1.0);
}
