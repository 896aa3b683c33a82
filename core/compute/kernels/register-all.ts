// Every kernel Ticket Lab registers with TF.js, listed once (as tfjs's register_all_kernels.ts).
// Imported for its effect by backend selection, so whatever runs on a backend finds them.
import './optimizer-kernels';
import './conv-backprop-webgpu';
import './conv-backprop-wasm';
