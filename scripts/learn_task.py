#!/usr/bin/env python3
"""A small task learned by `droplora train` (default: on Gemma 3 270M), measured before and after
with `droplora eval --generate` on held-out samples (greedy exact match).

The task: name the group a word belongs to (fruit, animal, color or tool), answering with the
group's name alone. The held-out words never occur in training, so a rise in held-out accuracy
means the adapter learned the rule (and the answer format), not the training answers.

    scripts/learn_task.py [--model models/gemma-3-270m-q4_k_m.gguf] [--droplora .build/release/droplora]
        [--steps 30] [--work DIR] [--threads 2] [--json]

Builds nothing: run `swift build -c release --product droplora` first (scripts/fetch-gemma3.sh
fetches the model).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

GROUPS = {
    "fruit": "apple banana cherry grape lemon mango peach pear plum strawberry watermelon pineapple "
             "kiwi apricot coconut lime raspberry blueberry papaya melon".split(),
    "animal": "dog cat horse elephant lion tiger rabbit wolf bear monkey giraffe zebra mouse fox "
              "deer camel sheep goat cow donkey".split(),
    "color": "red blue green yellow purple pink brown black white gray violet crimson turquoise "
             "indigo magenta beige maroon cyan scarlet teal".split(),
    "tool": "hammer screwdriver wrench saw drill pliers chisel shovel rake axe scissors mallet "
            "crowbar trowel hoe spanner sickle pickaxe vise sandpaper".split(),
}
PROMPTS = [
    "Which group does the word \"{w}\" belong to: fruit, animal, color or tool? Answer with the group only.",
    "Word: {w}. Is it a fruit, an animal, a color or a tool? Answer with the group only.",
    "Classify \"{w}\" as fruit, animal, color or tool. Answer with the group only.",
]
TRAIN_WORDS = 12  # per group; the other 8 are held out


def samples(words_by_group, prompts):
    return [{"prompt": p.format(w=w), "completion": group}
            for group, words in words_by_group.items() for w in words for p in prompts]


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def evaluate(args, data, adapter=None):
    command = [args.droplora, "eval", "--model", args.model, "--data", data, "--generate", "--no-loss",
               "--threads", str(args.threads), "--json"]
    if adapter:
        command += ["--adapter", adapter]
    return json.loads(run(command))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"))
    parser.add_argument("--droplora", default=os.path.join(ROOT, ".build", "release", "droplora"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--lr", default="1e-3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", help="keep the data and adapter here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="learn-task-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(args.seed)
    train_words, held_words = {}, {}
    for group, words in GROUPS.items():
        words = words[:]
        rng.shuffle(words)
        train_words[group], held_words[group] = words[:TRAIN_WORDS], words[TRAIN_WORDS:]
    train = samples(train_words, PROMPTS)
    held = samples(held_words, PROMPTS[:1])  # one phrasing per held-out word: 32 questions
    rng.shuffle(train)
    paths = {name: os.path.join(work, f"{name}.jsonl") for name in ("train", "held_out")}
    for name, rows in (("train", train), ("held_out", held)):
        with open(paths[name], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    before = evaluate(args, paths["held_out"])
    out = os.path.join(work, "adapter")
    start = time.time()
    run([args.droplora, "train", "--model", args.model, "--data", paths["train"], "--out", out,
         "--steps", str(args.steps), "--batch-size", "8", "--micro-batch", "8", "--max-seq-len", "96",
         "--rank", str(args.rank), "--lr", args.lr, "--warmup", "3", "--seed", str(args.seed),
         "--threads", str(args.threads), "--json"])
    seconds = time.time() - start
    after = evaluate(args, paths["held_out"], adapter=out)
    seen = evaluate(args, paths["train"], adapter=out)
    report = {
        "model": os.path.basename(args.model), "steps": args.steps, "train_samples": len(train),
        "held_out_samples": len(held), "train_seconds": round(seconds, 1),
        "held_out_exact_match_base": before["exact_match"],
        "held_out_exact_match_trained": after["exact_match"],
        "train_exact_match_trained": seen["exact_match"],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['model']}: {args.steps} steps on {len(train)} samples ({seconds:.0f} s); held-out exact "
              f"match {100 * before['exact_match']:.1f} % base -> {100 * after['exact_match']:.1f} % trained "
              f"({len(held)} questions, chance 25 %); training set {100 * seen['exact_match']:.1f} %")


if __name__ == "__main__":
    main()
