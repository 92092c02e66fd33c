"""The dashcam model shared by the simulator (which projects objects to pixels) and ``observe``
(which turns pixels back into bearings and ranges): a pinhole camera on the vehicle, and the
typical physical size of each object class.

``camera.json`` holds the fields of :class:`Camera`: ``width_px``, ``height_px``, ``hfov_deg``
and ``mount_yaw_deg`` are required; ``mount_height_m`` and ``pixel_sigma_px`` (the detector's
box-edge noise) have defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from mapdiff.errors import ConfigError, InputError

#: typical size of each class as seen by a camera: (centre height above the road, height, width)
#: in metres. Signs are 0.64 m plates on a post; a signal head is a 1 m tall box; a crossing is
#: seen as its sign. Real objects vary around these (the simulator draws +-10 %).
CLASS_SHAPE_M = {
    "traffic_sign": (2.2, 0.64, 0.64),
    "speed_limit": (2.2, 0.64, 0.64),
    "stop": (2.0, 0.70, 0.70),
    "give_way": (2.0, 0.80, 0.90),
    "crossing": (2.2, 0.64, 0.64),
    "traffic_signals": (3.0, 1.00, 0.35),
}
DEFAULT_SHAPE_M = (2.2, 0.64, 0.64)


def class_shape(cls: str) -> tuple[float, float, float]:
    """(centre height, height, width) in metres of an object class (a sign's, if unknown)."""
    return CLASS_SHAPE_M.get(cls, DEFAULT_SHAPE_M)


@dataclass(frozen=True)
class Camera:
    """A forward pinhole dashcam: image size, horizontal field of view, mount yaw (degrees
    clockwise from the vehicle's heading) and height, and the detector's pixel noise."""

    width_px: int = 1920
    height_px: int = 1080
    hfov_deg: float = 90.0
    mount_yaw_deg: float = 0.0
    mount_height_m: float = 1.4
    pixel_sigma_px: float = 2.0

    @property
    def focal_px(self) -> float:
        return 0.5 * self.width_px / math.tan(math.radians(0.5 * self.hfov_deg))

    @property
    def kernel_tuple(self) -> tuple:
        """What the projection kernels take."""
        return (self.focal_px, float(self.width_px), float(self.height_px), float(self.mount_yaw_deg),
                float(self.mount_height_m))

    def validate(self, source: str | None = None) -> Camera:
        """Raise :class:`ConfigError` naming the first impossible field (after ``source``, if given)."""
        checks = [
            ("width_px", self.width_px > 0),
            ("height_px", self.height_px > 0),
            ("hfov_deg", 0 < self.hfov_deg < 180),
            ("mount_yaw_deg", -360 <= self.mount_yaw_deg <= 360),
            ("mount_height_m", self.mount_height_m >= 0),
            ("pixel_sigma_px", self.pixel_sigma_px > 0),
        ]
        for name, good in checks:
            if not good:
                want = "in (0, 180)" if name == "hfov_deg" else "a valid value"
                msg = f"{name} must be {want}; found {getattr(self, name)!r}"
                if source:
                    msg = f"{source}: {msg}"
                raise ConfigError(msg, field=name)
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str = "camera") -> Camera:
        required = ("width_px", "height_px", "hfov_deg", "mount_yaw_deg")
        missing = [k for k in required if k not in data]
        if missing:
            msg = f"{source}: camera lacks field(s) {missing}; found {sorted(data)}"
            raise InputError(msg)
        known = {f.name for f in fields(cls)}
        values = {}
        for k in known & set(data):
            try:
                values[k] = float(data[k]) if not k.endswith("_px") or k == "pixel_sigma_px" else int(data[k])
            except (TypeError, ValueError):
                msg = f"{source}: field {k!r} must be a number; found {data[k]!r}"
                raise InputError(msg) from None
        try:
            return cls(**values).validate(source)
        except ConfigError as exc:
            raise InputError(str(exc)) from None


def read_camera(path) -> Camera:
    """Read and check a ``camera.json`` (local or remote)."""
    import fsspec

    from mapdiff.io import check_exists

    check_exists(path)
    with fsspec.open(str(path), "r") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            msg = f"{path}: not valid JSON ({exc})"
            raise InputError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path}: expected a JSON object with camera fields; found {type(data).__name__}"
        raise InputError(msg)
    return Camera.from_dict(data, source=str(path))
