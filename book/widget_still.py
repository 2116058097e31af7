"""Runs *inside a notebook's kernel* (sent there by :func:`book.executed.snapshot_widget`).

``still(model_id)`` describes the default state of a displayed ipywidget: the PNG of every ``Image``
widget in it (the playground draws its figure into one) and the label and value of every control.
It only reads widget attributes; it changes nothing in the kernel's state. Returns a JSON string.
"""

import base64
import json


def still(model_id):
    from ipywidgets.widgets.widget import _instances

    root = _instances.get(model_id)
    images, controls, seen = [], [], set()

    def walk(widget):
        if id(widget) in seen:
            return
        seen.add(id(widget))
        kind = type(widget).__name__
        if kind == "Image" and getattr(widget, "format", "") == "png" and widget.value:
            images.append(base64.b64encode(bytes(widget.value)).decode("ascii"))
        elif getattr(widget, "description", "") and hasattr(widget, "value") and kind not in ("Play", "Button"):
            value = widget.value
            controls.append([str(widget.description), f"{value:.3g}" if isinstance(value, float) else str(value)])
        for child in getattr(widget, "children", ()) or ():
            walk(child)

    if root is not None:
        walk(root)
    return json.dumps({"found": root is not None, "images": images, "controls": controls})
