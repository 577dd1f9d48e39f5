#version 330
// The fps / frame-time overlay: a small text texture (white on transparent) blended over the
// picture on a dark backing so it reads on any image.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_text;
void main() {
    float a = texture(u_text, vec2(v_uv.x, 1.0 - v_uv.y)).r;
    f_color = vec4(vec3(a), 0.6 + 0.4 * a);
}
