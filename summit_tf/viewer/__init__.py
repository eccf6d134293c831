"""Static web viewer assets (served by summit_tf.serve)."""
