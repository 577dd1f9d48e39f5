// effect: mirror
// Mirror and kaleidoscope. `horizontal` reflects the left half onto the right, `vertical` the
// top onto the bottom; `segments` of 2 or more folds the picture into that many wedges.
// param horizontal 0 1 0  >= 0.5 mirrors left to right
// param vertical 0 1 0  >= 0.5 mirrors top to bottom
// param segments 0 16 0  kaleidoscope wedges (0 or 1 = off)
// param angle -180 180 0  kaleidoscope rotation, degrees
uniform float horizontal;
uniform float vertical;
uniform float segments;
uniform float angle;
void main() {
    vec2 uv = v_uv;
    if (horizontal >= 0.5) uv.x = 0.5 - abs(uv.x - 0.5);
    if (vertical >= 0.5) uv.y = 0.5 - abs(uv.y - 0.5);
    float n = floor(segments + 0.5);
    if (n >= 2.0) {
        vec2 p = (uv - 0.5) * u_resolution;
        float wedge = 2.0 * PI / n;
        float a = mod(atan(p.y, p.x) - radians(angle), wedge);
        a = min(a, wedge - a) + radians(angle);      // fold: each wedge mirrors its neighbour
        p = length(p) * vec2(cos(a), sin(a));
        uv = p / u_resolution + 0.5;
    }
    f_color = texture(u_source, mirror_uv(uv));
}
