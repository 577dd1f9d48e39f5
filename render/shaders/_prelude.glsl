#version 330
// Prepended to every effect shader (built-in and user). An effect file holds only its header
// comment, its `uniform float <param>;` declarations and main(). A `#line 1` directive follows
// this prelude so the GLSL compiler's messages point at lines of the effect's own file.
//
// Colour: every texture between effects holds LINEAR light (generator frames are decoded from
// sRGB by the sampler); the `output` effect encodes to sRGB for the display and video files.

in vec2 v_uv;            // (0,0) top-left of the picture, (1,1) bottom-right
out vec4 f_color;

uniform sampler2D u_source;      // the picture so far (output of the previous effect)
uniform sampler2D u_history;     // this effect's own output of the previous display frame
uniform sampler2D u_frame;       // newest generator frame
uniform sampler2D u_frame_prev;  // the generator frame before it
uniform vec2 u_resolution;       // canvas size in pixels
uniform vec2 u_frame_size;       // generator frame size in pixels
uniform float u_time;            // seconds since the show started

// Set by the chain before this file (compile-time, so no shader pays for a branch it never
// takes; software rasterisers run both sides of a uniform `if`):
//   PHOSPHENE_FIT     generator frame -> canvas: 0 letterbox, 1 crop, 2 stretch
//   PHOSPHENE_FILTER  scaling filter: 0 nearest, 1 linear, 2 bicubic (Catmull-Rom)
#ifndef PHOSPHENE_FIT
#define PHOSPHENE_FIT 0
#endif
#ifndef PHOSPHENE_FILTER
#define PHOSPHENE_FILTER 1
#endif

const float PI = 3.14159265358979;
const vec3 LUMA = vec3(0.2126, 0.7152, 0.0722);  // Rec. 709 weights

vec3 srgb_to_linear(vec3 c) {
    c = max(c, 0.0);
    return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(0.04045, c));
}

vec3 linear_to_srgb(vec3 c) {
    c = max(c, 0.0);
    return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c));
}

vec3 rgb_to_hsv(vec3 c) {
    float mx = max(c.r, max(c.g, c.b));
    float mn = min(c.r, min(c.g, c.b));
    float d = mx - mn;
    float h = 0.0;
    if (d > 0.0) {
        if (mx == c.r)      h = mod((c.g - c.b) / d, 6.0);
        else if (mx == c.g) h = (c.b - c.r) / d + 2.0;
        else                h = (c.r - c.g) / d + 4.0;
    }
    return vec3(h / 6.0, mx > 0.0 ? d / mx : 0.0, mx);
}

vec3 hsv_to_rgb(vec3 c) {
    vec3 k = mod(vec3(5.0, 3.0, 1.0) + c.x * 6.0, 6.0);
    return c.z - c.z * c.y * clamp(min(k, 4.0 - k), 0.0, 1.0);
}

// Mirrored repeat: geometric effects (zoom out, rotate) show a reflection instead of black edges.
vec2 mirror_uv(vec2 uv) {
    return 1.0 - abs(mod(uv, 2.0) - 1.0);
}

// Rotate a point given in pixels around the origin (positive degrees turn the picture clockwise
// on screen, because y grows downwards).
vec2 rotate_px(vec2 p, float degrees) {
    float a = radians(degrees);
    float c = cos(a), s = sin(a);
    return vec2(c * p.x - s * p.y, s * p.x + c * p.y);
}

// Catmull-Rom bicubic from 9 bilinear taps (the texture must use linear filtering).
vec4 sample_bicubic(sampler2D tex, vec2 uv, vec2 size) {
    vec2 pos = uv * size;
    vec2 p1 = floor(pos - 0.5) + 0.5;
    vec2 f = pos - p1;
    vec2 w0 = f * (-0.5 + f * (1.0 - 0.5 * f));
    vec2 w1 = 1.0 + f * f * (-2.5 + 1.5 * f);
    vec2 w2 = f * (0.5 + f * (2.0 - 1.5 * f));
    vec2 w3 = f * f * (-0.5 + 0.5 * f);
    vec2 w12 = w1 + w2;
    vec2 t0 = (p1 - 1.0) / size;
    vec2 t12 = (p1 + w2 / w12) / size;
    vec2 t3 = (p1 + 2.0) / size;
    vec4 r = texture(tex, vec2(t0.x, t0.y)) * w0.x * w0.y
           + texture(tex, vec2(t12.x, t0.y)) * w12.x * w0.y
           + texture(tex, vec2(t3.x, t0.y)) * w3.x * w0.y
           + texture(tex, vec2(t0.x, t12.y)) * w0.x * w12.y
           + texture(tex, vec2(t12.x, t12.y)) * w12.x * w12.y
           + texture(tex, vec2(t3.x, t12.y)) * w3.x * w12.y
           + texture(tex, vec2(t0.x, t3.y)) * w0.x * w3.y
           + texture(tex, vec2(t12.x, t3.y)) * w12.x * w3.y
           + texture(tex, vec2(t3.x, t3.y)) * w3.x * w3.y;
    return max(r, 0.0);  // Catmull-Rom overshoots at hard edges
}

// Canvas uv -> generator-frame uv for the chosen fit (letterbox keeps the whole frame with bars,
// crop fills the canvas and cuts the overhang, stretch ignores the aspect ratio).
vec2 frame_uv(vec2 uv) {
    float canvas_aspect = u_resolution.x / u_resolution.y;
    float frame_aspect = u_frame_size.x / u_frame_size.y;
    vec2 scale = vec2(1.0);
#if PHOSPHENE_FIT == 0
    if (frame_aspect > canvas_aspect) scale.y = frame_aspect / canvas_aspect;
    else scale.x = canvas_aspect / frame_aspect;
#elif PHOSPHENE_FIT == 1
    if (frame_aspect > canvas_aspect) scale.x = canvas_aspect / frame_aspect;
    else scale.y = frame_aspect / canvas_aspect;
#endif
    return (uv - 0.5) * scale + 0.5;
}

// A generator frame (newest: u_frame, previous: u_frame_prev) as it appears on the canvas,
// scaled with the chosen filter; black outside it (the letterbox bars).
vec4 sample_frame(sampler2D tex, vec2 uv) {
    vec2 fuv = frame_uv(uv);
#if PHOSPHENE_FILTER == 2
    vec3 c = sample_bicubic(tex, fuv, u_frame_size).rgb;
#else
    vec3 c = texture(tex, fuv).rgb;
#endif
    // 1 inside the frame, 0 on the bars (a multiply, not a branch: cheaper on llvmpipe)
    float inside = step(0.0, fuv.x) * step(0.0, fuv.y) * step(fuv.x, 1.0) * step(fuv.y, 1.0);
    return vec4(c * inside, 1.0);
}
