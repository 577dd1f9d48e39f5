#version 330
// Window output: draws the finished canvas (sRGB bytes, top row first) into the window's
// viewport, which the window has placed for letterbox or crop. The default framebuffer's first
// row is the BOTTOM of the screen, hence the flip.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_canvas;
void main() {
    f_color = texture(u_canvas, vec2(v_uv.x, 1.0 - v_uv.y));
}
