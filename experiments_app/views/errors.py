from django.shortcuts import render


def permission_denied(request, exception=None):
    detail = str(exception) if exception and str(exception) else "You do not have access to this page."
    return render(request, "403.html", {"detail": detail}, status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)
