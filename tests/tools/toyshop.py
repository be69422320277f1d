"""A small package with known answers for the code tools.

What the tests rely on:
- import cycle: ``toyshop.cycle_a`` <-> ``toyshop.cycle_b``;
- class hierarchy: ``Animal`` <- ``Dog`` <- ``Puppy`` in ``models``;
- call sites: ``make_pet`` is called twice, both in ``client`` (``adopt`` and ``second_pet``);
- ``__all__`` in ``toyshop``, ``models`` and ``shapes``;
- a frozen dataclass ``Point``, an ``Enum`` ``Size``;
- one complex function ``logic.tangled``;
- one unused function ``factory.never_called``;
- ``logic.old_name`` is imported and called in ``client`` (a rename across files);
- ``shapes`` holds two structurally similar functions and a copy-pasted block.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

PACKAGE = "toyshop"

FILES: dict[str, str] = {
    "__init__.py": '''
        """Toy package."""

        from toyshop.factory import make_pet
        from toyshop.models import Animal, Dog

        __all__ = ["Animal", "Dog", "make_pet"]
        ''',
    "models.py": '''
        """Animals and small value types."""

        from __future__ import annotations

        import enum
        from dataclasses import dataclass

        __all__ = ["Animal", "Dog", "Puppy", "Point", "Size"]


        class Animal:
            kingdom = "animalia"

            def __init__(self, name: str) -> None:
                self.name = name
                self.sounds: list[str] = []
                self.calls = 0

            def speak(self) -> str:
                self.calls += 1
                noise = self._noise()
                self.sounds.append(noise)
                return noise

            def rename(self, name: str) -> None:
                self.name = name

            def describe(self) -> str:
                return f"{self.name} ({self.calls} calls)"

            def _noise(self) -> str:
                return "..."

            def __repr__(self) -> str:
                return f"Animal({self.name!r})"


        class Dog(Animal):
            def _noise(self) -> str:
                return "woof"


        class Puppy(Dog):
            def fetch(self, thing: str) -> str:
                return thing


        @dataclass(frozen=True)
        class Point:
            x: int
            y: int = 0


        class Size(enum.Enum):
            SMALL = 1
            LARGE = 2
        ''',
    "factory.py": '''
        """The pet factory, and one function nobody calls."""

        from __future__ import annotations

        from toyshop.models import Animal, Dog, Puppy


        def make_pet(kind: str) -> Animal:
            if kind == "dog":
                return Dog(kind)
            if kind == "puppy":
                return Puppy(kind)
            return Animal(kind)


        def never_called(value: int) -> int:
            return value * 2
        ''',
    "logic.py": '''
        """A helper to rename and one deliberately tangled function."""

        from __future__ import annotations


        def old_name(value: int) -> int:
            return value + 1


        def tangled(a: int, b: int, items: list[int]) -> int:
            if a < 0:
                return 0
            total = 0
            for item in items:
                if item > a and item < b:
                    total += item
                elif item == a or item == b:
                    total -= item
                else:
                    while total > 100:
                        total //= 2
            try:
                total = total // a
            except ZeroDivisionError:
                total = 0
            if b > 10:
                total += 1
            return total if total > 0 else -total
        ''',
    "client.py": '''
        """Client side: the factory, the helper to rename, a socket and a worker process."""

        from __future__ import annotations

        import multiprocessing as mp
        import socket

        from toyshop.factory import make_pet
        from toyshop.logic import old_name


        class ToyClient:
            def __init__(self, host: str) -> None:
                self.host = host

            def adopt(self) -> str:
                pet = make_pet("dog")
                return pet.speak()

            def connect(self) -> socket.socket:
                return socket.create_connection((self.host, old_name(8000)))


        def spawn_worker() -> mp.Process:
            worker = mp.Process(target=make_pet, args=("puppy",))
            worker.start()
            return worker


        def second_pet() -> str:
            return make_pet("puppy").speak()
        ''',
    "server.py": '''
        """Server side: a listening socket served from a thread."""

        from __future__ import annotations

        import socket
        import threading


        class ToyServer:
            def __init__(self, port: int) -> None:
                self.port = port
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

            def serve(self) -> None:
                self._sock.bind(("127.0.0.1", self.port))
                self._sock.listen()
                thread = threading.Thread(target=self._accept, daemon=True)
                thread.start()

            def _accept(self) -> None:
                connection, _ = self._sock.accept()
                connection.close()
        ''',
    "registry.py": '''
        """A singleton two ways: a class that caches itself and a lazy module global."""

        from __future__ import annotations


        class Registry:
            _instance = None

            def __new__(cls) -> Registry:
                if cls._instance is None:
                    cls._instance = super().__new__(cls)
                return cls._instance


        _registry: Registry | None = None


        def get_registry() -> Registry:
            global _registry
            if _registry is None:
                _registry = Registry()
            return _registry
        ''',
    "cycle_a.py": '''
        """Half of an import cycle."""

        from __future__ import annotations

        from toyshop import cycle_b


        def ping(count: int) -> int:
            return cycle_b.pong(count - 1) if count > 0 else 0
        ''',
    "cycle_b.py": '''
        """The other half of the import cycle."""

        from __future__ import annotations

        from toyshop import cycle_a


        def pong(count: int) -> int:
            return cycle_a.ping(count)
        ''',
    "shapes.py": '''
        """Two look-alike functions and a block pasted twice."""

        from __future__ import annotations

        __all__ = ["rectangle_area", "triangle_area", "rectangle_report", "square_report"]


        def rectangle_area(rectangles: list[tuple[float, float]]) -> float:
            total = 0.0
            for width, height in rectangles:
                if width < 0 or height < 0:
                    raise ValueError("negative side")
                total += width * height
            return total


        def triangle_area(triangles: list[tuple[float, float]]) -> float:
            result = 0.0
            for base, tall in triangles:
                if base < 0 or tall < 0:
                    raise ValueError("negative size")
                result += base * tall / 2
            return result


        def rectangle_report(items: list[tuple[float, float]]) -> str:
            count = len(items)
            largest = 0.0
            smallest = float("inf")
            for width, height in items:
                largest = max(largest, width * height)
                smallest = min(smallest, width * height)
            mean = largest / count if count else 0.0
            return f"{count} items, largest {largest}, smallest {smallest}, mean {mean}"


        def square_report(items: list[tuple[float, float]]) -> str:
            squares = [(side, side) for side, _ in items]
            items = squares
            count = len(items)
            largest = 0.0
            smallest = float("inf")
            for width, height in items:
                largest = max(largest, width * height)
                smallest = min(smallest, width * height)
            mean = largest / count if count else 0.0
            return f"{count} items, largest {largest}, smallest {smallest}, mean {mean}"
        ''',
    "demo.py": '''
        """Uses the public surface, so that only never_called stays unused."""

        from __future__ import annotations

        from toyshop import cycle_a
        from toyshop.client import ToyClient, second_pet, spawn_worker
        from toyshop.logic import tangled
        from toyshop.models import Animal, Point, Puppy, Size
        from toyshop.registry import get_registry
        from toyshop.server import ToyServer


        def run_demo() -> list[object]:
            client = ToyClient("localhost")
            pup = Puppy("rex")
            pup.rename("max")
            return [
                client.adopt(),
                client.connect,
                second_pet(),
                spawn_worker,
                pup.fetch("ball"),
                pup.describe(),
                Point(1, 2).x,
                Point(3).y,
                Size.SMALL,
                Size.LARGE,
                get_registry(),
                ToyServer(0).serve,
                cycle_a.ping(3),
                tangled(1, 5, [2, 3]),
                Animal.kingdom,
            ]


        if __name__ == "__main__":
            run_demo()
        ''',
}


def write_toyshop(root: Path) -> Path:
    """Write the package under ``root`` and return the package folder ``root/toyshop``."""
    package = root / PACKAGE
    package.mkdir(parents=True)
    for name, text in FILES.items():
        (package / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return package


def line_of(package: Path, filename: str, fragment: str) -> int:
    """1-based number of the first line of ``filename`` containing ``fragment``."""
    for number, line in enumerate((package / filename).read_text().splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in {filename}")
