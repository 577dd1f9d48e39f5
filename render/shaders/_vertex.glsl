#version 330
// One triangle that covers the viewport (no vertex buffer needed: positions come from
// gl_VertexID). v_uv is (0,0) at the first row of the target in memory, which the chain treats
// as the TOP of the picture (images are stored top row first, like numpy arrays and video frames).
out vec2 v_uv;
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    v_uv = p;
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
