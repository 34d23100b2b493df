from django.contrib import admin
from django.urls import path

from taskito.contrib.django.admin import register_taskito_admin

register_taskito_admin()

urlpatterns = [path("admin/", admin.site.urls)]
