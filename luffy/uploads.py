"""Uploaded images and image references: decoded with Pillow, stored re-encoded, never trusted.

A file is accepted only if Pillow decodes it completely as PNG, JPEG, GIF or WebP (a file
that merely starts with ``GIF89a`` and holds HTML is refused), and what is stored is a copy
Pillow wrote itself, under a random name with the extension of the decoded format: whatever
else the upload carried (a script after the image data, metadata) is not kept. SVG is not
accepted (it can carry script). Uploads are served with ``X-Content-Type-Options: nosniff``
(luffy/headers.py, luffy/media.py), so a browser never takes one for a page.

``check_image_path`` validates the typed form of an image field: a same-site image path under
``/static/``, ``/uploads/`` or ``/media/``, or an ``https://`` URL of an image.
"""

import io
import re
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app
from PIL import Image, UnidentifiedImageError

FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
# Larger images are refused before decoding (a small file can inflate to gigabytes).
MAX_PIXELS = 40_000_000
SAME_SITE_PREFIXES = ("/static/", "/uploads/", "/media/")
MAX_REFERENCE = 255
# A typed image address names an image file: no whitespace or backslash, an image extension.
IMAGE_PATH = re.compile(
    r"^(/(?![/\\])|https://[^\s/?#\\]+/)[^\s?#\\]*\.(png|jpe?g|gif|webp|svg)([?#][^\s]*)?$",
    re.IGNORECASE,
)


class UploadError(ValueError):
    pass


def decode_image(data):
    """The image in ``data``, fully decoded, or UploadError saying what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise UploadError("只能上传 PNG、JPEG、GIF 或 WebP 图片")
            if image.width * image.height > MAX_PIXELS:
                raise UploadError("图片尺寸过大")
            image.load()  # decodes every pixel of the first frame: a fake image fails here
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadError("文件不是有效的图片（PNG、JPEG、GIF 或 WebP）") from error
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise UploadError("图片尺寸过大") from error
    return image


def reencode(image):
    """The bytes of a fresh copy of ``image`` in its own format, with no metadata."""
    output = io.BytesIO()
    kind = image.format
    if kind == "JPEG":
        image.convert("RGB" if image.mode not in ("RGB", "L") else image.mode).save(
            output, "JPEG", quality=90
        )
    elif kind == "GIF" and getattr(image, "n_frames", 1) > 1:
        image.save(output, "GIF", save_all=True)
    else:
        image.save(output, kind)
    return output.getvalue()


def save_image(file_storage, folder):
    """Store a re-encoded copy of an uploaded image as ``<folder>/<random>.<ext>``; returns
    its public URL path, or raises UploadError with a message for the form."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 4 * 1024 * 1024
    data = file_storage.stream.read(limit + 1)
    if not data:
        raise UploadError("上传的文件是空的")
    if len(data) > limit:
        raise UploadError("图片过大")
    image = decode_image(data)
    try:
        encoded = reencode(image)
    except (OSError, ValueError) as error:
        raise UploadError("图片无法处理，请换一张") from error
    directory = Path(current_app.config["UPLOAD_DIR"]) / folder
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.{FORMATS[image.format]}"
    (directory / name).write_bytes(encoded)
    return f"/uploads/{folder}/{name}"


def check_image_path(path):
    """Refuse a typed image address other than a same-site image path or an https URL.

    Accepted: a path under /static/, /uploads/ or /media/, or an ``https://`` URL, naming a
    .png, .jpg, .jpeg, .gif, .webp or .svg file. Refused (UploadError, with the form's
    message): ``javascript:``, ``data:``, ``http://``, ``//host``, ``..``, other paths.
    """
    path = path if isinstance(path, str) else ""
    same_site = path.startswith(SAME_SITE_PREFIXES) and ".." not in path
    parts = urlsplit(path) if not same_site else None
    https = parts is not None and parts.scheme == "https" and bool(parts.hostname)
    if not (
        len(path) <= MAX_REFERENCE
        and IMAGE_PATH.fullmatch(path)
        and (same_site or (https and "@" not in parts.netloc))
    ):
        raise UploadError(
            "图片地址须是 /static/、/uploads/ 下的站内路径或 https 网址，"
            "并以 .png、.jpg、.jpeg、.gif、.webp 或 .svg 结尾"
        )
