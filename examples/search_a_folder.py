"""Index a folder of person crops, add more, search by text and by image, write an HTML sheet.

Runs offline in about a minute on a CPU: the images come from ``plip synth`` and the model is
the embedded ``plip-tiny-synth`` (for real crops use ``plip-rn50``).

    python examples/search_a_folder.py [--out /tmp/plip-search-example]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import plip
from plip.data.synthetic import generate_dataset
from plip.app.visualize import QueryRow, RetrievedImage, relative_src, render_retrieval_html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/plip-search-example", help="working folder (replaced)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    # 1. A folder of crops: 40 synthetic people, 4 shots each; the first 30 people arrive first.
    generate_dataset(out / "synth", identities=40, images_per_id=4, seed=0, progress=False)
    crops = out / "crops"
    people = sorted((out / "synth" / "Part1").iterdir(), key=lambda p: int(p.name))
    for person in people[:30]:
        shutil.copytree(person, crops / person.name)
    camera = {f"{p.name}/{shot}.jpg": {"camera": f"cam{shot}"} for p in people for shot in range(1, 5)}

    model = plip.load("plip-tiny-synth")
    index = plip.Index.build(out / "crops.index", model, crops, metadata=camera)
    print(f"built: {index.info()['entries']} crops, backend {index.info()['backend']}")

    # 2. The next day's crops: only the new files are encoded.
    for person in people[30:]:
        shutil.copytree(person, crops / person.name)
    added = index.add(crops, model, metadata=camera)
    print(f"added {added} new crops (now {len(index)})")

    # 3. Search by text, by text on one camera, and by image.
    text = "a woman in a red top and blue trousers"
    rows = []
    for label, hits in (
        (text, index.search(text, model=model, top_k=6)[0]),
        (f"{text} (camera cam2)", index.search(text, model=model, top_k=6, where="camera=cam2")[0]),
        ("[image] 35/1.jpg", index.search(image=str(crops / "35" / "1.jpg"), model=model, top_k=6)[0]),
    ):
        print(f"\n{label}")
        for hit in hits:
            print(f"  {hit.rank}  {hit.score:.3f}  {hit.id}  {hit.metadata.get('camera', '')}")
        rows.append(QueryRow(label, [RetrievedImage(h.rank, h.path, h.score, h.id) for h in hits]))

    # 4. The HTML sheet (the same renderer as `plip index search --html`).
    page = out / "hits.html"
    page.write_text(render_retrieval_html(rows, title="plip index: search a folder", image_src=relative_src(out)))
    print(f"\nwrote {page}")


if __name__ == "__main__":
    main()
