"""phosphene.render: OpenGL (moderngl) effect chain, window and headless contexts, video files."""
