"""Saving uploaded images under ``UPLOAD_DIR``, checked by content, never trusting the name."""

import re
import uuid
from pathlib import Path

from flask import current_app

# Magic numbers of the raster formats accepted (SVG is refused: it can carry script).
IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}


# A typed image address: a path on this site or an http(s) URL, naming an image file.
IMAGE_PATH = re.compile(
    r"^(/(?![/\\])|https?://[^\s/?#\\]+/)[^\s?#\\]*\.(png|jpe?g|gif|webp|svg)([?#][^\s]*)?$",
    re.IGNORECASE,
)


class UploadError(ValueError):
    pass


def check_image_path(path):
    """Refuse a typed image address that cannot be an image ("x", "javascript:...")."""
    if not IMAGE_PATH.match(path or ""):
        raise UploadError(
            "图片地址须是以 / 开头的站内路径或 http(s) 网址，"
            "并以 .png、.jpg、.jpeg、.gif、.webp 或 .svg 结尾"
        )


def sniff_image_type(head):
    for signature, extension in IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return extension
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def save_image(file_storage, folder):
    """Store an uploaded image as ``<folder>/<random>.<ext>``; returns its public URL path."""
    head = file_storage.stream.read(16)
    file_storage.stream.seek(0)
    extension = sniff_image_type(head)
    if extension is None:
        raise UploadError("只能上传 PNG、JPEG、GIF 或 WebP 图片")
    directory = Path(current_app.config["UPLOAD_DIR"]) / folder
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.{extension}"
    file_storage.save(directory / name)
    return f"/uploads/{folder}/{name}"
