"""load_dataset: offline sources, stand-in labelling, splits, limits and clear errors; the download probe."""

import contextlib

import pytest
import torch

import course_utils as cu
from course_utils import datasets


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "course-data"))


@pytest.mark.parametrize(
    "name, shape, standin",
    [
        ("mnist", (1, 28, 28), False),
        ("fashion_mnist", (1, 28, 28), True),
        ("cifar10", (3, 32, 32), True),
        ("svhn", (3, 32, 32), True),
        ("digits", (1, 8, 8), False),
    ],
)
def test_offline_sources_have_the_real_shapes_and_say_what_they_are(name, shape, standin, capsys):
    data = cu.load_dataset(name, "test", limit=300)
    printed = capsys.readouterr().out
    assert data.shape == shape and len(data) == 300 and data.num_classes == 10
    assert data.images.dtype == torch.float32 and 0 <= data.images.min() and data.images.max() <= 1
    assert data.labels.dtype == torch.int64 and set(data.labels.unique().tolist()) <= set(range(10))
    assert data.is_standin is standin
    assert ("STAND-IN" in printed) is standin  # the notebook output shows it
    assert ("offline mode" in printed) is (name != "digits")  # digits are real and local anyway


def test_mnist_subset_is_a_stratified_real_split():
    train = cu.load_dataset("mnist", "train", verbose=False)
    test = cu.load_dataset("mnist", "test", verbose=False)
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert len(set(test.labels[:50].tolist())) >= 8  # shuffled, not sorted by class
    # no image appears in both splits
    seen = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in seen for x in test.images)


def test_standins_are_deterministic_and_cached(tmp_path, monkeypatch):
    a = cu.load_dataset("cifar10", "test", verbose=False)
    b = cu.load_dataset("cifar10", "test", verbose=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert "NOT CIFAR-10" in a.describe() and a.classes == cu.SHAPES10_CLASSES


def test_limit_and_subset_are_reproducible():
    a = cu.load_dataset("digits", "train", limit=50, seed=3, verbose=False)
    b = cu.load_dataset("digits", "train", limit=50, seed=3, verbose=False)
    assert torch.equal(a.labels, b.labels)
    full = cu.load_dataset("digits", "train", verbose=False)
    assert full.subset(10**6) is full


def test_unpacking_normalising_and_splitting():
    data = cu.load_dataset("digits", "train", verbose=False)
    X, y = data
    assert X is data.images and y is data.labels
    norm = data.normalized()
    assert torch.allclose(norm.images.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-5)
    train, val = cu.train_val_split(data, 0.25)
    assert len(train) + len(val) == len(data) and val.split == "val"


def test_real_source_fails_with_instructions_when_offline():
    with pytest.raises(RuntimeError, match="source='offline'"):
        cu.load_dataset("cifar10", source="real", verbose=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "imagenet"}, "Unknown data set 'imagenet'"),
        ({"name": "mnist", "split": "validation"}, "train_val_split"),
        ({"name": "mnist", "source": "web"}, "'auto'"),
        ({"name": "mnist", "limit": 0}, "positive int"),
    ],
)
def test_bad_arguments_explain_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cu.load_dataset(**kwargs, verbose=False)


def test_imagedata_validates_shapes():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        datasets.ImageData(torch.zeros(4, 8, 8), torch.zeros(4), [], "x", "train", "s", False)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        datasets.ImageData(torch.zeros(4, 1, 8, 8), torch.zeros(3), [], "x", "train", "s", False)
    with pytest.raises(ValueError, match="val_fraction"):
        cu.train_val_split(cu.load_dataset("digits", verbose=False), 1.5)


# ----------------------------------------------------------------------------- the reachability probe
class _FakeNetwork:
    """Stands in for socket.create_connection: records every (host, port) dialled; only ``open_ports`` answer."""

    def __init__(self, open_ports=(80, 443)):
        self.open_ports, self.dialled = set(open_ports), []

    def __call__(self, address, timeout=None):
        self.dialled.append(address)
        if address[1] not in self.open_ports:
            raise ConnectionRefusedError(f"nothing listens on {address}")
        return contextlib.nullcontext()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("fashion_mnist", [("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)]),
        ("svhn", [("ufldl.stanford.edu", 80)]),
        ("cifar10", [("www.cs.toronto.edu", 443)]),
        ("mnist", [("ossci-datasets.s3.amazonaws.com", 443), ("yann.lecun.com", 80)]),
    ],
)
def test_probe_dials_each_mirror_on_its_own_scheme_and_port(name, expected, monkeypatch):
    network = _FakeNetwork(open_ports=())  # nothing answers: every mirror is tried once
    monkeypatch.setattr(datasets.socket, "create_connection", network)
    assert datasets._reachable_mirror(name) is None
    assert network.dialled == expected
    network = _FakeNetwork(open_ports={expected[-1][1]})  # the last mirror's port answers
    monkeypatch.setattr(datasets.socket, "create_connection", network)
    assert datasets._reachable_mirror(name) is not None


def test_endpoint_uses_the_scheme_default_or_the_explicit_port():
    assert datasets._endpoint("http://example.org/a.gz") == ("example.org", 80)
    assert datasets._endpoint("https://example.org/") == ("example.org", 443)
    assert datasets._endpoint("http://example.org:8080/x") == ("example.org", 8080)


def test_fallback_mirror_table_matches_torchvision():
    """_MIRRORS is used only if torchvision renames its attributes; it must name the same servers."""
    from torchvision import datasets as tvd

    endpoints = lambda urls: {datasets._endpoint(u) for u in urls}  # noqa: E731
    assert endpoints(datasets._MIRRORS["mnist"]) == endpoints(tvd.MNIST.mirrors)
    assert endpoints(datasets._MIRRORS["fashion_mnist"]) == endpoints(tvd.FashionMNIST.mirrors)
    assert endpoints(datasets._MIRRORS["cifar10"]) == endpoints([tvd.CIFAR10.url])
    assert endpoints(datasets._MIRRORS["svhn"]) == endpoints([v[0] for v in tvd.SVHN.split_list.values()])


def test_fallback_mirror_table_is_used_when_torchvision_changes(monkeypatch):
    from torchvision import datasets as tvd

    monkeypatch.delattr(tvd.FashionMNIST, "mirrors")
    assert datasets._download_urls("fashion_mnist") == list(datasets._MIRRORS["fashion_mnist"])


def test_an_http_only_mirror_is_downloaded_from_when_online(monkeypatch):
    """Online with only port 80 open, Fashion-MNIST is downloaded, not replaced by the stand-in."""
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    network = _FakeNetwork(open_ports={80})
    monkeypatch.setattr(datasets.socket, "create_connection", network)
    calls = []

    class FakeFashion:
        data, targets = torch.zeros(3, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 2])

    def fake_torchvision(name, split, download):
        calls.append(download)
        if not download:
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        return FakeFashion()

    monkeypatch.setattr(datasets, "_is_cached", lambda name, split: False)
    monkeypatch.setattr(datasets, "_torchvision_dataset", fake_torchvision)
    data = cu.load_dataset("fashion_mnist", "train", verbose=False)
    assert calls == [True] and not data.is_standin and len(data) == 3
    assert ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80) in network.dialled


def test_offline_banner_does_not_contradict_itself(monkeypatch):
    """The source line of the bundled MNIST subset says 'real data'; no note may then say real data is unavailable."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    from course_utils import load_dataset

    text = load_dataset("mnist", "train", limit=50, verbose=False).describe()
    assert "(real data)" in text and "real data unavailable" not in text and "not used here" in text
    standin = load_dataset("cifar10", "train", limit=50, verbose=False).describe()
    assert "STAND-IN" in standin and "real cifar10 data is not used here" in standin
