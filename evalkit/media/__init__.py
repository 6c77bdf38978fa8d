"""Video and image files through ffmpeg: probing, decoding, encoding, frame folders."""
