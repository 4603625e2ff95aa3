"""User inputs to control tensors: MediaPipe pose, landmark smoothing, camera kinematics (no gradio)."""
