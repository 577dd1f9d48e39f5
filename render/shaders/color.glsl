// effect: color
// Colour grade. Hue rotates in HSV (pure red at 120 degrees becomes pure green); saturation,
// contrast and brightness act on the display (sRGB) scale, where they look even to the eye.
// param hue -180 180 0  hue rotation in degrees
// param saturation 0 2 1  0 grey, 1 unchanged, 2 double
// param contrast 0 2 1  around mid grey; 1 unchanged
// param brightness -1 1 0  added on the display scale
uniform float hue;
uniform float saturation;
uniform float contrast;
uniform float brightness;
void main() {
    vec3 c = max(texture(u_source, v_uv).rgb, 0.0);
    if (hue != 0.0) {
        vec3 hsv = rgb_to_hsv(c);
        hsv.x = fract(hsv.x + hue / 360.0);
        c = hsv_to_rgb(hsv);
    }
    vec3 s = linear_to_srgb(c);
    s = mix(vec3(dot(s, LUMA)), s, saturation);
    s = (s - 0.5) * contrast + 0.5 + brightness;
    f_color = vec4(srgb_to_linear(s), 1.0);
}
