"""The reference of ``tools.bench_peer``: the published pix2pix (Isola et al., CVPR 2017) in PyTorch.

``unet_256`` and the 70x70 PatchGAN with the defaults of the authors'
PyTorch implementation, written from that description, their ``normal``
initialisation and the published training step (LSGAN + 100 L1, Adam):
:mod:`tools.bench_peer`'s docstring describes them layer by layer. PyTorch
is imported only when something here is called (:func:`import_torch`), so
the harness and its stand-in sides never load it.
"""

import contextlib
import functools

INSTALL_HINT = "PyTorch is not installed: pip install -e '.[peer]'"

# The published models' sizes: unet_256 (8 levels, 64 filters) and the basic PatchGAN (3 layers, 64 filters).
FULL = {"levels": 8, "ngf": 64, "ndf": 64, "d_layers": 3}
# --quick: the same structure, 5 levels (the fewest the published layout has) and 4 filters, on 32 px.
TINY = {"levels": 5, "ngf": 4, "ndf": 4, "d_layers": 3}

LEARNING_RATE = 2e-4
BETAS = (0.5, 0.999)
L1_WEIGHT = 100.0


class TorchMissing(RuntimeError):
    """PyTorch cannot be imported (the ``peer`` extra is not installed)."""


def import_torch():
    """The ``torch`` module, or :class:`TorchMissing` with the install advice."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise TorchMissing(INSTALL_HINT) from error
    return torch


def level_filters(levels, ngf):
    """Filters of each U-Net level, outermost first: ``ngf`` doubling per level, at most ``8 ngf``."""
    return [ngf * min(2**i, 8) for i in range(levels)]


@functools.cache
def _modules():
    """The peer's ``nn.Module`` classes (built on first use, so torch is imported only then)."""
    torch = import_torch()
    nn = torch.nn

    class UNetGenerator(nn.Module):
        """pix2pix's U-Net generator; ``unet_256`` with ``levels=8, ngf=64`` (:mod:`tools.bench_peer`)."""

        def __init__(self, levels=8, ngf=64, in_channels=3, out_channels=3, dropout=0.5):
            super().__init__()
            if levels < 5:
                raise ValueError(f"the published U-Net layout needs at least 5 levels, got {levels}")
            self.levels = levels
            filters = level_filters(levels, ngf)
            down = []
            for i, width in enumerate(filters):
                if i == 0:  # outermost: the image straight into the convolution, no norm after
                    down.append(nn.Conv2d(in_channels, width, 4, 2, 1, bias=False))
                    continue
                layers = [nn.LeakyReLU(0.2), nn.Conv2d(filters[i - 1], width, 4, 2, 1, bias=False)]
                if i < levels - 1:  # the innermost has no norm
                    layers.append(nn.BatchNorm2d(width))
                down.append(nn.Sequential(*layers))
            self.down = nn.ModuleList(down)
            up = []
            for i, width in enumerate(filters):
                # Up step of level i: from the level's output (the innermost) or the concatenation of the
                # level's skip and the deeper up step (twice the width), to level i - 1's width.
                width_in = width if i == levels - 1 else 2 * width
                if i == 0:
                    up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(width_in, out_channels, 4, 2, 1),
                                            nn.Tanh()))
                    continue
                layers = [nn.ReLU(), nn.ConvTranspose2d(width_in, filters[i - 1], 4, 2, 1, bias=False),
                          nn.BatchNorm2d(filters[i - 1])]
                if 4 <= i < levels - 1:  # the 8 ngf blocks between the four outer ones and the innermost
                    layers.append(nn.Dropout(dropout))
                up.append(nn.Sequential(*layers))
            self.up = nn.ModuleList(up)

        def forward(self, x):
            skips = []
            for step in self.down:
                x = step(x)
                skips.append(x)
            x = self.up[-1](skips[-1])
            for i in range(self.levels - 2, -1, -1):
                x = self.up[i](torch.cat([skips[i], x], 1))
            return x

    class PatchDiscriminator(nn.Module):
        """pix2pix's PatchGAN; the 70x70 ``basic`` one with ``layers=3, ndf=64`` (:mod:`tools.bench_peer`)."""

        def __init__(self, ndf=64, layers=3, in_channels=6):
            super().__init__()
            body = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = ndf
            for n in range(1, layers + 1):
                stride = 2 if n < layers else 1
                new_width = ndf * min(2**n, 8)
                body += [nn.Conv2d(width, new_width, 4, stride, 1, bias=False), nn.BatchNorm2d(new_width),
                         nn.LeakyReLU(0.2)]
                width = new_width
            body.append(nn.Conv2d(width, 1, 4, 1, 1))
            self.body = nn.Sequential(*body)

        def forward(self, condition, image):
            return self.body(torch.cat([condition, image], 1))

    return UNetGenerator, PatchDiscriminator


def init_weights(module, gain=0.02):
    """The original's ``normal`` initialisation: convolutions N(0, gain), BatchNorm scales N(1, gain), biases 0."""
    torch = import_torch()
    nn = torch.nn
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)
    return module


def build_generator(levels=8, ngf=64):
    """The peer's U-Net generator, initialised (``unet_256`` by default)."""
    return init_weights(_modules()[0](levels=levels, ngf=ngf))


def build_discriminator(ndf=64, layers=3):
    """The peer's PatchGAN on ``concat(input, output)``, initialised (the 70x70 ``basic`` one by default)."""
    return init_weights(_modules()[1](ndf=ndf, layers=layers))


def count_params(module):
    """Number of parameters of a torch module."""
    return sum(p.numel() for p in module.parameters())


class PeerTrainer:
    """The published pix2pix training step (LSGAN + 100 L1, Adam 2e-4 / 0.5 / 0.999; :mod:`tools.bench_peer`)."""

    def __init__(self, generator, discriminator, l1_weight=L1_WEIGHT, learning_rate=LEARNING_RATE, betas=BETAS,
                 autocast=False):
        torch = import_torch()
        self.torch = torch
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = l1_weight
        self.autocast = autocast  # forward passes under torch.autocast("cpu", bfloat16); backward passes outside
        self.g_optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=betas)
        self.d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=betas)

    def _forward(self):
        """The context of the forward passes: bfloat16 autocast with ``autocast``, else nothing."""
        if self.autocast:
            return self.torch.autocast("cpu", dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def _set_d_trainable(self, trainable):
        for p in self.discriminator.parameters():
            p.requires_grad_(trainable)

    @staticmethod
    def _lsgan(torch, scores, real):
        target = torch.ones_like(scores) if real else torch.zeros_like(scores)
        return torch.nn.functional.mse_loss(scores, target)

    def train_step(self, condition, target):
        """One D step then one G step on a batch; returns ``{"d_loss", "g_loss", "l1"}`` as floats."""
        torch = self.torch
        self.generator.train()
        self.discriminator.train()
        with self._forward():
            fake = self.generator(condition)

        self._set_d_trainable(True)
        self.d_optimizer.zero_grad(set_to_none=True)
        with self._forward():
            d_loss = 0.5 * (self._lsgan(torch, self.discriminator(condition, fake.detach()), False)
                            + self._lsgan(torch, self.discriminator(condition, target), True))
        d_loss.backward()
        self.d_optimizer.step()

        self._set_d_trainable(False)
        self.g_optimizer.zero_grad(set_to_none=True)
        with self._forward():
            adversarial = self._lsgan(torch, self.discriminator(condition, fake), True)
            l1 = torch.nn.functional.l1_loss(fake, target)
            g_loss = adversarial + self.l1_weight * l1
        g_loss.backward()
        self.g_optimizer.step()
        self._set_d_trainable(True)
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()), "l1": float(l1.detach())}

    def infer(self, condition):
        """The generator's output in eval mode under ``torch.inference_mode()``."""
        self.generator.eval()
        with self.torch.inference_mode(), self._forward():
            return self.generator(condition)


def random_pair(size, batch, seed=0):
    """A seeded (condition, target) float32 NCHW batch in [-1, 1] (the peer's Tanh range)."""
    torch = import_torch()
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand((batch, 3, size, size), generator=generator) * 2 - 1
    condition = (target + 0.2 * torch.rand(target.shape, generator=generator)).clamp(-1, 1)
    return condition, target


def build_peer(config, seed=0, autocast=False):
    """``(PeerTrainer, params)`` of the peer in ``config`` (:data:`FULL` or :data:`TINY`); ``autocast``: bfloat16."""
    torch = import_torch()
    torch.manual_seed(seed)
    generator = build_generator(config["levels"], config["ngf"])
    discriminator = build_discriminator(config["ndf"], config["d_layers"])
    params = {"generator": count_params(generator), "discriminator": count_params(discriminator)}
    return PeerTrainer(generator, discriminator, autocast=autocast), params


def check_peer_size(size, levels):
    """Raises ValueError unless ``size`` is a multiple of ``2 ** levels`` (the published U-Net does not pad)."""
    if size < 1 or size % 2**levels:
        raise ValueError(f"the peer's {levels}-level U-Net needs a size that is a multiple of {2**levels}, got {size}")
