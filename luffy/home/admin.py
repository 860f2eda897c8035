"""Admin views of the home page's content: banners and the courses they point to."""

from wtforms import FileField
from wtforms.validators import Length, Optional, Regexp, ValidationError

from luffy.admin.security import SecureModelView
from luffy.uploads import UploadError, check_image_path, save_image

SAFE_LINK = Regexp(r"^(/|https?://)", message="链接必须以 / 或 http(s):// 开头")


def image_field(label):
    return FileField(
        label, validators=[Optional()], description="PNG、JPEG、GIF 或 WebP，最大 4 MB"
    )


class ImageUploadMixin:
    """Saves an uploaded file into ``upload_folder`` and stores its URL in ``image_column``."""

    upload_folder = ""
    image_column = ""

    def validate_form(self, form):
        if not super().validate_form(form):
            return False
        if not hasattr(form, self.image_column) or not hasattr(form, "image_upload"):
            return True  # delete, action and inline-edit forms
        upload = form.image_upload
        has_upload = bool(upload.data and getattr(upload.data, "filename", ""))
        current = getattr(form, self.image_column).data
        if not has_upload and not current:
            getattr(form, self.image_column).errors.append("请上传图片或填写图片地址")
            return False
        if has_upload:
            try:
                form._saved_image_url = save_image(upload.data, self.upload_folder)
            except UploadError as error:
                upload.errors.append(str(error))
                return False
            return True
        try:
            check_image_path(current)
        except UploadError as error:
            getattr(form, self.image_column).errors.append(str(error))
            return False
        return True

    def on_model_change(self, form, model, is_created):
        saved = getattr(form, "_saved_image_url", None)
        if saved:
            setattr(model, self.image_column, saved)
        super().on_model_change(form, model, is_created)


class BannerView(ImageUploadMixin, SecureModelView):
    upload_folder = "banners"
    image_column = "image"
    column_list = ("id", "title", "image", "link", "orders", "is_show", "is_delete", "updated_at")
    column_default_sort = ("orders", False)
    column_searchable_list = ("title",)
    column_filters = ("is_show", "is_delete")
    column_editable_list = ("orders", "is_show")
    column_labels = {
        "title": "标题",
        "image": "图片",
        "link": "链接",
        "orders": "排序",
        "is_show": "显示",
        "is_delete": "已删除",
        "updated_at": "更新时间",
        "created_at": "创建时间",
        "image_upload": "上传图片",
    }
    form_columns = ("title", "image", "image_upload", "link", "orders", "is_show", "is_delete")
    form_extra_fields = {"image_upload": image_field("上传图片")}
    form_args = {
        "image": {"validators": [Optional(), Length(max=255)], "description": "或上传一张图片"},
        "link": {"validators": [Optional(), Length(max=255), SAFE_LINK]},
    }


class CourseView(ImageUploadMixin, SecureModelView):
    upload_folder = "courses"
    image_column = "cover_image"
    column_list = ("id", "name", "price", "cover_image", "updated_at")
    column_searchable_list = ("name",)
    column_labels = {
        "name": "课程名",
        "price": "价格",
        "cover_image": "封面",
        "description": "简介",
        "image_upload": "上传封面",
        "updated_at": "更新时间",
    }
    form_columns = ("name", "price", "cover_image", "image_upload", "description")
    form_extra_fields = {"image_upload": image_field("上传封面")}
    form_args = {"cover_image": {"validators": [Optional(), Length(max=255)]}}

    def on_model_change(self, form, model, is_created):
        if model.price is not None and model.price < 0:
            raise ValidationError("价格不能为负数")
        super().on_model_change(form, model, is_created)


def add_views(admin):
    from luffy.extensions import db
    from luffy.models import Banner, Course

    admin.add_view(BannerView(Banner, db.session, name="轮播图", endpoint="banner"))
    admin.add_view(CourseView(Course, db.session, name="课程", endpoint="course"))
