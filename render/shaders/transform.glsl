// effect: transform
// Zoom, rotate and shift the picture around its centre: the onset "kick". Uncovered edges show
// a mirror image rather than black.
// param zoom 0.25 4 1  magnification; 1 unchanged, 1.1 a 10% punch-in
// param rotate -180 180 0  degrees, clockwise
// param x -1 1 0  shift right, in picture widths
// param y -1 1 0  shift down, in picture heights
uniform float zoom;
uniform float rotate;
uniform float x;
uniform float y;
void main() {
    vec2 p = (v_uv - 0.5 - vec2(x, y)) * u_resolution;   // pixels from the (moved) centre
    p = rotate_px(p, -rotate) / zoom;
    f_color = texture(u_source, mirror_uv(p / u_resolution + 0.5));
}
