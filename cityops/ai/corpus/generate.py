"""Generator of the synthetic training corpus (``python -m cityops.ai.corpus.generate``).

Seeded and deterministic: the same seed writes byte-identical ``cityops/ai/data/corpus-v1.jsonl``
and ``split-v1.json``. Texts are built from the vocabularies in ``vocab.py`` and templates in
the voices of the four channels (12345 callers and agents' summaries, grid workers' notes,
mini-program users, video-AI alerts), with addresses of the demo district (street, road names
of ``cityops.registry.seed.ROADS``, invented compounds and numbers), keyword traps (landmarks
of other categories), two-problem reports (the dominant one is the label), negations, regional
wording and misspellings. The hand-written examples of ``data/handwritten-v1.jsonl`` are merged
in. Nothing here is real personal data.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from cityops.ai.corpus import vocab as V
from cityops.registry.seed import ROADS

DATA = Path(__file__).resolve().parent.parent / "data"
SEED = 14
HOLDOUT = 0.2
STREETS = {"310117001": "岳阳街道", "310117002": "永丰街道", "310117003": "方松街道", "310117004": "中山街道",
           "310117005": "广富林街道", "310117006": "九里亭街道", "310117102": "泗泾镇", "310117103": "佘山镇",
           "310117104": "车墩镇", "310117105": "新桥镇", "310117106": "洞泾镇", "310117107": "九亭镇",
           "310117109": "泖港镇", "310117116": "石湖荡镇", "310117117": "新浜镇", "310117120": "叶榭镇",
           "310117121": "小昆山镇"}
_SYL = list("春晓新华康乐泰和安居锦绣景明嘉宁福兴月湖云间茸城松鹤仓桥秀水佳园")
_COMPOUND = ["小区", "苑", "花园", "新村", "公寓", "家园", "雅苑", "名邸"]
CHANNELS = {"hotline": 58, "grid": 34, "app": 44, "video_ai": 14}


class Gen:
    def __init__(self, seed: int = SEED) -> None:
        self.r = random.Random(seed)

    def pick(self, seq: list[str]) -> str:
        return seq[self.r.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # ------------------------------------------------------------ places
    def address(self, detail: bool = True) -> str:
        code = self.pick(sorted(STREETS))
        street = STREETS[code]
        road = self.pick(ROADS[code])
        f = self.r.random()
        if f < 0.25:
            compound = self.pick(_SYL) + self.pick(_SYL) + self.pick(_COMPOUND)
            where = f"{road}{self.r.randint(1, 1500)}弄{compound}"
            if self.chance(0.5):
                where += f"{self.r.randint(1, 40)}号楼"
        elif f < 0.5:
            where = f"{road}{self.r.randint(1, 3000)}号"
        elif f < 0.7:
            other = self.pick(ROADS[code])
            where = f"{road}{other}路口" if other != road else f"{road}近{self.r.randint(1, 900)}号"
        elif f < 0.85:
            where = road
        else:
            where = self.pick(_SYL) + self.pick(_SYL) + self.pick(["村", "居委", "社区"])
        prefix = self.pick(["", "松江区", "上海市松江区", ""])
        if not detail:
            return where
        return prefix + (street if self.chance(0.7) else "") + where

    def spot(self) -> str:
        if self.chance(0.3):
            return self.pick(V.LANDMARKS) + self.pick(["旁边", "边上", "附近", "对面", "下面", "后面"])
        return self.pick(V.SPOTS)

    def say(self, label: str) -> str:
        lab, owner = label, None
        if label in V.MANHOLE_TYPES:
            lab, owner = "井盖缺失破损（权属待查）", self.pick(V.MANHOLE_TYPES[label])
        s = self.pick(V.LABELS[lab]["says"]).replace("{x}", self.spot())
        if owner:
            s = s.replace("窨井盖", owner).replace("下水道盖子", owner).replace("井盖", owner, 1) if "井盖" in s or "盖子" in s \
                else owner + "，" + s
        return s

    def terse(self, label: str) -> str:
        if label in V.MANHOLE_TYPES:
            return self.pick(V.MANHOLE_TYPES[label]) + self.pick(["缺失", "破损", "移位", "下沉", "松动"])
        return self.pick(V.LABELS[label]["terse"])

    def effect(self, label: str) -> str:
        lab = "井盖缺失破损（权属待查）" if label in V.MANHOLE_TYPES else label
        return self.pick(V.LABELS[lab]["effect"])

    def ai_type(self, label: str) -> str | None:
        if label in V.MANHOLE_TYPES:
            return self.pick(["井盖缺失", "井盖异常"]) + "（" + self.pick(V.MANHOLE_TYPES[label]) + "）"
        a = V.LABELS[label]["ai"]
        return self.pick(a) if a else None

    # ------------------------------------------------------------ noise
    def noisy(self, text: str) -> str:
        for word, alts in V.VARIANTS.items():
            if word in text and self.chance(0.25):
                text = text.replace(word, self.pick(alts), 1)
        if self.chance(0.08):
            text = self.pick(V.REGIONAL) + text
        if self.chance(0.1):  # a dropped or doubled character (typing on a phone)
            i = self.r.randrange(max(1, len(text)))
            text = text[:i] + text[i + 1:] if self.chance(0.5) else text[:i] + text[i:i + 1] + text[i:]
        return text

    # ------------------------------------------------------------ voices
    def hotline(self, label: str) -> str:
        addr, t = self.address(), self.pick(V.TIMES)
        if self.chance(0.45):  # agent's work-order summary
            s = (f"市民来电反映：{t}，{addr}{self.pick(['', '附近', '一带'])}{self.say(label)}，{self.effect(label)}。"
                 f"{self.pick(['市民要求相关部门尽快处理。', '诉求：请尽快派人处理。', '来电人希望尽快解决。', '要求核实处置并回复。'])}")
        else:
            s = (f"{self.pick(V.OPENERS)}我在{addr}，{t}{self.say(label)}，{self.effect(label)}，"
                 f"{self.pick(V.EMOTIONS)}。")
            if self.chance(0.4):
                s += f"{self.say(label)}，{self.pick(V.EMOTIONS)}。"
        return self.noisy(s)

    def grid(self, label: str) -> str:
        addr = self.address(detail=self.chance(0.5))
        f = self.r.random()
        if f < 0.35:
            s = f"{addr} {self.terse(label)}"
        elif f < 0.65:
            s = f"巡查发现：{addr}{self.terse(label)}，已拍照上报"
        else:
            s = f"{self.terse(label)}，位置{addr}，{self.pick(['需派单处置', '请尽快处理', '已告知物业', '现场已拍照'])}"
        return self.noisy(s)

    def app(self, label: str) -> str:
        f = self.r.random()
        if f < 0.4:
            s = self.say(label)
        elif f < 0.75:
            s = f"{self.say(label)}，{self.effect(label)}"
        else:
            s = f"{self.address(detail=False)}{self.pick(['这里', '', '附近'])}{self.say(label)}，{self.pick(['求处理！', '谁来管管', '麻烦看一下', '拍照了'])}"
        return self.noisy(s)

    def video(self, label: str) -> str | None:
        a = self.ai_type(label)
        if a is None:
            return None
        cam = f"{self.pick(['CAM', 'SJ-', 'VID', 'GB'])}{self.r.randint(10000, 99999)}"
        conf = f"{self.r.uniform(0.55, 0.99):.2f}"
        road = self.address(detail=False)
        f = self.r.random()
        if f < 0.4:
            return f"[视频AI告警] 事件类型：{a}；设备：{cam}；置信度{conf}；位置：{road}"
        if f < 0.7:
            return f"AI识别 {a} 摄像头{cam} {road} 置信度 {conf}"
        return f"智能巡屏发现疑似{a}，点位{road}，设备编号{cam}"

    # ------------------------------------------------------------ hard cases
    def two_problems(self, label: str, other: str) -> str:
        a, b = self.say(label), self.say(other)
        f = self.r.random()
        if f < 0.3:
            s = f"{a}，{self.effect(label)}，{self.pick(V.EMOTIONS)}。顺便说一下，{b}，这个不急。"
        elif f < 0.55:
            s = f"{self.terse(other)}的事情倒还好，最主要的问题是{a}，{self.effect(label)}。"
        elif f < 0.8:
            s = f"除了{b}以外，更严重的是{a}，{self.effect(label)}，{self.pick(V.EMOTIONS)}。"
        else:
            s = f"{a}。另外{b}，但最要紧的还是{self.say(label)}，{self.pick(V.EMOTIONS)}。"
        return self.noisy(f"我在{self.address()}，" + s if self.chance(0.6) else s)

    def negation(self, label: str, other: str) -> str:
        f = self.r.random()
        if f < 0.4:
            s = f"不是{self.terse(other)}，是{self.say(label)}"
        elif f < 0.7:
            s = f"{self.terse(other)}已经处理好了，现在是{self.say(label)}"
        else:
            s = f"没有{self.terse(other)}，就是{self.say(label)}，{self.effect(label)}"
        return self.noisy(s)

    def trap(self, label: str) -> str:
        lm = self.pick(V.LANDMARKS)
        rel = self.pick(["旁边的", "边上的", "附近", "对面", "下面", "后面"])
        return self.noisy(f"{self.address(detail=False)}{lm}{rel}{self.say(label)}")


def labels() -> list[str]:
    return [*V.LABELS, *V.MANHOLE_TYPES]


def _id(text: str, n: int) -> str:
    return hashlib.sha1(f"{n}|{text}".encode()).hexdigest()[:12]


def generate(seed: int = SEED) -> list[dict[str, Any]]:
    g = Gen(seed)
    out: list[dict[str, Any]] = []
    labs = labels()
    seen: set[str] = set()

    def add(text: str | None, label: str, channel: str, kind: str) -> None:
        if not text or text in seen:
            return
        seen.add(text)
        out.append({"id": _id(text, len(out)), "text": text, "label": label, "channel": channel, "kind": kind})

    for label in labs:
        scale = 0.35 if label in V.MANHOLE_TYPES else 1.0
        for channel, n in CHANNELS.items():
            for _ in range(max(3, int(n * scale))):
                fn = {"hotline": g.hotline, "grid": g.grid, "app": g.app, "video_ai": g.video}[channel]
                add(fn(label), label, channel, "plain")
        for _ in range(max(4, int(14 * scale))):
            other = g.pick([x for x in labs if x != label and not (x in V.MANHOLE_TYPES and label in V.MANHOLE_TYPES)])
            add(g.two_problems(label, other), label, g.pick(["hotline", "app"]), "two_problems")
        for _ in range(max(3, int(8 * scale))):
            other = g.pick([x for x in labs if x != label])
            add(g.negation(label, other), label, g.pick(["hotline", "app", "grid"]), "negation")
        for _ in range(max(3, int(10 * scale))):
            add(g.trap(label), label, g.pick(["app", "grid", "hotline"]), "trap")
    hand = DATA / "handwritten-v1.jsonl"
    if hand.exists():
        for line in hand.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                add(r["text"], r["label"], r.get("channel", "app"), "handwritten")
    return out


def split(rows: list[dict[str, Any]], seed: int = SEED) -> list[str]:
    """The held-out ids: a fixed HOLDOUT share of every label (shuffled with the seed)."""
    r = random.Random(seed + 1)
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row["id"])
    held: list[str] = []
    for label in sorted(by_label):
        ids = sorted(by_label[label])
        r.shuffle(ids)
        held += ids[:max(1, int(round(len(ids) * HOLDOUT)))]
    return sorted(held)


def main() -> None:
    rows = generate()
    with open(DATA / "corpus-v1.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    held = split(rows)
    (DATA / "split-v1.json").write_text(json.dumps({"format": "cityops-corpus-split/1", "corpus": "corpus-v1",
                                                    "seed": SEED, "holdout": held}, ensure_ascii=False, indent=0) + "\n",
                                        encoding="utf-8")
    print(f"{len(rows)} examples, {len(held)} held out")


if __name__ == "__main__":
    main()
