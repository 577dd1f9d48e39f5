// effect: flash
// The onset pulse: adds light to the whole picture and/or flips it to its negative. Map an
// onset envelope to `amount` for a white flash, to `invert` for a strobe-like negative.
// param amount 0 1 0  light added to every channel (linear light; 1 = a full white)
// param invert 0 1 0  mix toward the negative picture (on the display scale)
uniform float amount;
uniform float invert;
void main() {
    vec3 c = max(texture(u_source, v_uv).rgb, 0.0) + amount;
    if (invert > 0.0) {
        vec3 s = clamp(linear_to_srgb(c), 0.0, 1.0);
        c = srgb_to_linear(mix(s, 1.0 - s, invert));
    }
    f_color = vec4(c, 1.0);
}
