"""A detection set made of real photographs that ship inside packages.

No download: every pixel comes from scikit-image's `skimage.data` and
scikit-learn's `load_sample_images`. Four classes of real objects, cut out
of photos, are scaled, flipped, re-lit and placed on crops of other photos,
one to three per image, with their true boxes:

- `cat`: Chelsea's head (`skimage.data.chelsea`), a rectangular crop;
- `cup`: the cup and saucer of `skimage.data.coffee`, a rectangular crop;
- `face`: the 100 faces of `skimage.data.lfw_subset` (Labeled Faces in the
  Wild, 25x25 grey crops of 100 people), a different face each time;
- `horse`: the horse of `skimage.data.horse`, cut out along its silhouette
  and given a chestnut coat (the photo is a black silhouette).

Backgrounds are random crops of brick, grass, gravel (grey), the Hubble
deep field, the rocket launch, and scikit-learn's China and flower photos.

What it is not: a natural scene set. Each class but `face` is one object
photographed once, so a detector learns that object, under scale, flip and
lighting changes, not the category; objects do not occlude each other
(overlaps are kept under IoU 0.2); rectangular cut-outs keep their own
background at the edges. It is a real-pixel, offline stand-in for the
photos a user would collect, good for comparing compressed detectors with
their float original, not for claiming accuracy on COCO.
"""

import numpy as np

CLASSES = ("cat", "cup", "face", "horse")


def _resize(image, shape):
    from skimage.transform import resize

    return resize(image, shape, order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


def _rgb(image):
    image = np.asarray(image, np.float32)
    if image.max() > 1.5:
        image = image / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    return image[..., :3]


def _small(image, side=128):
    """The photo scaled so its longer side is `side` pixels."""
    scale = side / max(image.shape[:2])
    if scale >= 1:
        return image
    return _resize(image, (max(int(image.shape[0] * scale), 1),
                           max(int(image.shape[1] * scale), 1)))


def _sources():
    """`(objects, backgrounds)`: objects as `(class id, rgb, alpha)`."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    cat = _rgb(data.chelsea())[25:260, 110:360]
    cup = _rgb(data.coffee())[20:320, 80:520]
    horse = data.horse()  # True on the white background.
    # A chestnut coat: the silhouette is black, which vanished on the
    # Hubble deep field.
    horse_rgb = np.stack([np.where(horse, 1.0, 0.62), np.where(
        horse, 1.0, 0.38), np.where(horse, 1.0, 0.2)], -1)
    objects = [(0, _small(cat), None), (1, _small(cup), None)]
    faces = data.lfw_subset()[:100]  # The first 100 are faces.
    objects += [(2, _rgb(face)[2:23, 3:22], None) for face in faces]
    alpha = _small((~horse).astype(np.float32)[..., None].repeat(3, -1))
    objects.append((3, _small(horse_rgb.astype(np.float32)), alpha[..., :1]))
    backgrounds = [_small(_rgb(getattr(data, name)()), 256) for name in (
        "brick", "grass", "gravel", "hubble_deep_field", "rocket")]
    backgrounds += [_small(_rgb(image), 256)
                    for image in load_sample_images().images]
    return objects, backgrounds


def _overlap(box, boxes):
    if not boxes:
        return 0.0
    from kcompress.detection import iou

    return float(iou(box, boxes).max())


def make_set(count, image_size=96, seed=0, min_side=0.25, max_side=0.6):
    """`count` images with 1 to 3 objects each.

    Args:
        count: images.
        image_size: their side, in pixels.
        seed: the random seed (the same seed gives the same set).
        min_side: the smallest object side, as a fraction of the image.
        max_side: the largest.

    Returns:
        `(images, truth)`: `(count, size, size, 3)` float32 in [0, 1], and
        one `(boxes, classes)` pair per image, boxes normalized
        `(ymin, xmin, ymax, xmax)`.
    """
    rng = np.random.default_rng(seed)
    objects, backgrounds = _sources()
    by_class = [[o for o in objects if o[0] == c] for c in range(len(CLASSES))]
    images = np.zeros((count, image_size, image_size, 3), np.float32)
    truth = []
    for i in range(count):
        background = backgrounds[rng.integers(len(backgrounds))]
        y = rng.integers(background.shape[0] - image_size + 1)
        x = rng.integers(background.shape[1] - image_size + 1)
        canvas = background[y:y + image_size, x:x + image_size].copy()
        canvas *= rng.uniform(0.6, 1.2)
        boxes, classes = [], []
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(len(CLASSES)))
            _, rgb, alpha = by_class[cls][rng.integers(len(by_class[cls]))]
            side = rng.uniform(min_side, max_side) * image_size
            aspect = rng.uniform(0.8, 1.25) * rgb.shape[1] / rgb.shape[0]
            h = int(np.clip(side / np.sqrt(aspect), 8, image_size))
            w = int(np.clip(side * np.sqrt(aspect), 8, image_size))
            top = int(rng.integers(image_size - h + 1))
            left = int(rng.integers(image_size - w + 1))
            box = [top / image_size, left / image_size,
                   (top + h) / image_size, (left + w) / image_size]
            if _overlap(box, boxes) > 0.2:
                continue
            patch = _resize(rgb, (h, w)) * rng.uniform(0.7, 1.3)
            mask = 1.0 if alpha is None else _resize(alpha, (h, w))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
                mask = mask if alpha is None else mask[:, ::-1]
            region = canvas[top:top + h, left:left + w]
            canvas[top:top + h, left:left + w] = (mask * patch
                                                  + (1 - mask) * region)
            boxes.append(box)
            classes.append(cls)
        images[i] = np.clip(canvas, 0, 1)
        truth.append((np.asarray(boxes, np.float32),
                      np.asarray(classes, np.int32)))
    return images, truth
