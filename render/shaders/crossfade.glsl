// effect: crossfade
// Blends the newest generator frame with the one before it, so motion stays smooth when the
// generator delivers fewer frames than the display shows. Put it first in the chain. The engine
// ramps `position` from 0 to 1 over one generator interval after each new frame.
// param position 0 1 1  0 = previous generator frame, 1 = newest (linear-light mix)
uniform float position;
void main() {
    vec4 newest = texture(u_source, v_uv);
    vec4 previous = sample_frame(u_frame_prev, v_uv);
    f_color = vec4(mix(previous.rgb, newest.rgb, position), 1.0);
}
