#version 330
// The performer's overlay: a text texture blended over the picture on a dark backing so it
// reads on any image. Red holds ordinary text (white), green warnings (amber). A level meter
// bar and a few lamps (beat, OSC, MIDI) are drawn here from uniforms set every frame, so they
// move at the display rate while the text is rasterised only twice a second.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_text;
uniform vec2 u_box;          // the box in texture pixels: width, height in use
uniform vec4 u_meter;        // the meter bar: x0, y0, x1, y1 in texture pixels from the top-left
uniform float u_level;       // how much of the bar is lit, 0..1
uniform vec4 u_lamp_rect[4]; // the lamps, same coordinates (an empty rectangle: no lamp)
uniform vec4 u_lamp_on;      // each lamp's brightness, 0..1
const vec3 UNLIT = vec3(0.32);

bool inside(vec2 p, vec4 r) {
    return p.x >= r.x && p.x < r.z && p.y >= r.y && p.y < r.w;
}

void main() {
    vec2 p = vec2(v_uv.x, 1.0 - v_uv.y) * u_box;
    vec2 t = texelFetch(u_text, ivec2(p), 0).rg;
    vec3 colour = vec3(t.r) + vec3(1.0, 0.62, 0.1) * t.g;
    float alpha = 0.6 + 0.4 * max(t.r, t.g);
    if (inside(p, u_meter)) {
        // green to -18 dBFS, yellow to -6, red above (the bar spans -60..0 dBFS)
        float f = (p.x - u_meter.x) / (u_meter.z - u_meter.x);
        vec3 lit = f < 0.7 ? vec3(0.2, 0.85, 0.3) : (f < 0.9 ? vec3(0.95, 0.8, 0.2)
                                                              : vec3(1.0, 0.25, 0.2));
        colour = f <= u_level ? lit : UNLIT;
        alpha = 1.0;
    }
    for (int i = 0; i < 4; i++) {
        if (inside(p, u_lamp_rect[i])) {
            colour = mix(UNLIT, vec3(1.0, 0.9, 0.35), u_lamp_on[i]);
            alpha = 1.0;
        }
    }
    f_color = vec4(colour, alpha);
}
