// The first pass of every chain: the newest generator frame, fitted to the canvas.
void main() {
    f_color = sample_frame(u_frame, v_uv);
}
