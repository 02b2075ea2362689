"""A realistic HR export for sandbox migrations, with every defect kind at a known rate.

    python bench/migration_dataset.py --rows 100000 --out employees.csv [--encoding gbk] [--seed N]
                                      [--defect-rate 0.1] [--period 2024-06] [--manifest FILE]

Writes a CSV export with Chinese column names as an HR system produces them (dates in
several formats, regions by name, insurance types as one multi-valued cell) that
``examples/migration/mapping.toml`` maps, and a JSON manifest (default: ``FILE`` +
``.manifest.json``) saying how many rows carry each defect and which rows they are.
Each defective row carries exactly one defect, named by the validation rule that
must report it; every other row is clean (valid, unique resident ID numbers with
correct check digits, a base within the region's range for the period).

The first rows are documented sandbox persons: Wang Fang (active in 440100, so her
Changsha row names 440100 as the previous region: a transfer), Li Ming (a first-time
participant) and Liu Yang (terminated in 430100, hired again there).

The same seed and arguments always give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stdnum.cn import ric, uscc  # noqa: E402

from gateway.policy import in_force, resolve, shipped_regions  # noqa: E402
from sandbox.validation import birth_place_known  # noqa: E402

__all__ = ["COLUMNS", "DEFECT_KINDS", "generate", "main"]

COLUMNS = (
    "序号", "姓名", "性别", "身份证号码", "出生日期", "手机号码", "单位名称", "统一社会信用代码", "参保地",
    "原参保地", "入职日期", "离职日期", "人员状态", "是否缴费", "参保险种", "缴费基数(元)", "所属期",
)  # fmt: skip

#: The defects written, by the rule that reports them (level 1 first).
DEFECT_KINDS = (
    "required_field_missing",
    "unparseable_value",
    "unknown_code",
    "ragged_row",
    "undecodable_row",
    "invalid_id_number",
    "invalid_uscc",
    "birth_date_mismatch",
    "gender_mismatch",
    "hired_before_16",
    "leave_before_hire",
    "departed_without_leave_date",
    "base_out_of_range",
    "departed_still_contributing",
    "duplicate_id",
    "likely_duplicate_person",
    "active_in_two_regions",
)

_REGIONS = {  # code: (name as exported, weight, employers (uscc, name))
    "430100": ("长沙市", 35, (("91430100MA4L16JQ9D", "长沙示例制造有限公司"),)),
    "440100": ("广州", 25, (("91440101MA59BX4C3Y", "广州示例科技有限公司"),)),
    "420100": ("武汉市", 20, (("91420100MA4K2QXL25", "武汉示例物流有限公司"),)),
    "440300": ("深圳", 10, ()),
    "330100": ("杭州市", 10, ()),
}
_EMPLOYER_NAMES = {"440300": "深圳示例电子有限公司", "330100": "杭州示例软件有限公司"}
_DIVISIONS = ("430102", "430104", "430103", "440104", "440106", "420102", "420106", "440303", "440305",
              "330102", "330106", "510104", "360102", "410102", "450102", "110101", "430121")  # fmt: skip
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏浩宇欣怡子涵梓萱一诺俊杰晨曦思远雨桐"
_TYPES = ("养老、医疗、失业、工伤、生育", "五险", "养老,医疗,失业,工伤", "养老、医疗", "养老保险;医疗保险;工伤保险")
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "slash")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"

_SANDBOX_PERSONS = (  # name, id, region, previous region, hire date
    ("王芳", "440104199003120213", "430100", "440100", dt.date(2024, 3, 1)),
    ("李明", "430102199511080356", "430100", None, dt.date(2024, 4, 8)),
    ("刘洋", "430104199306150282", "430100", None, dt.date(2024, 5, 6)),
)
_UNDECODABLE_MARK = "\x00UNDECODABLE\x00"


class _Person:
    __slots__ = ("birth", "id_number", "name", "region")

    def __init__(self, name: str, id_number: str, birth: dt.date, region: str) -> None:
        self.name, self.id_number, self.birth, self.region = name, id_number, birth, region


class _Generator:
    def __init__(self, seed: int, period: str) -> None:
        self.rng = random.Random(seed)
        self.period = period
        self.period_start = dt.date(int(period[:4]), int(period[5:7]), 1)
        self.period_end = (self.period_start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        self.ids: set[str] = set()
        self.people: set[tuple[str, dt.date]] = set()
        self.active: list[_Person] = []  # clean, active and contributing: sources for cross-row defects
        self.employers = {code: list(employers) for code, (_, _, employers) in _REGIONS.items()}
        for code, name in _EMPLOYER_NAMES.items():
            self.employers[code] = [(self._uscc(code), name), (self._uscc(code), name.replace("示例", "样例"))]
        regions = shipped_regions()
        self.ranges = {}
        for code in _REGIONS:
            policy = in_force(resolve(regions[code].versions), self.period_start)
            if policy is None:
                raise SystemExit(f"no shipped policy for {code} in {period}")
            self.ranges[code] = (policy.base_floor, policy.base_ceiling)

    # -- identities ---------------------------------------------------------------

    def _uscc(self, region: str) -> str:
        body = "91" + region + "".join(self.rng.choice(_USCC_CHARS) for _ in range(9))
        return body + uscc.calc_check_digit(body)

    def id_number(self, birth: dt.date, gender: str | None = None) -> str:
        while True:
            division = self.rng.choice(_DIVISIONS)
            if not birth_place_known(division, f"{birth.year:04d}"):
                continue
            sequence = self.rng.randrange(0, 500) * 2 + (gender == "male" if gender else self.rng.randrange(2))
            body = f"{division}{birth:%Y%m%d}{sequence:03d}"
            number = body + ric.calc_check_digit(body + "0")
            if number not in self.ids:
                self.ids.add(number)
                return number

    def name(self) -> str:
        given = "".join(self.rng.choice(_GIVEN) for _ in range(self.rng.choice((1, 2, 2))))
        return self.rng.choice(_SURNAMES) + given

    def birth(self, earliest: int = 1970, latest: int = 2003) -> dt.date:
        start = dt.date(earliest, 1, 1).toordinal()
        return dt.date.fromordinal(self.rng.randrange(start, dt.date(latest, 12, 31).toordinal()))

    def new_person(self, region: str, **birth_range: int) -> _Person:
        while True:
            name, birth = self.name(), self.birth(**birth_range)
            if (name, birth) not in self.people:
                self.people.add((name, birth))
                return _Person(name, self.id_number(birth), birth, region)

    def take_active(self) -> _Person:
        """An earlier clean, active person, used for one cross-row defect only (two would
        conflict with each other as well)."""
        index = self.rng.randrange(len(self.active))
        self.active[index], self.active[-1] = self.active[-1], self.active[index]
        return self.active.pop()

    # -- cells --------------------------------------------------------------------

    def date_text(self, value: dt.date) -> str:
        fmt = self.rng.choice(_DATE_FORMATS)
        if fmt == "slash":  # what a spreadsheet shows: 2024/3/1
            return f"{value.year}/{value.month}/{value.day}"
        return value.strftime(fmt)

    def between(self, first: dt.date, last: dt.date) -> dt.date:
        return dt.date.fromordinal(self.rng.randint(first.toordinal(), max(first, last).toordinal()))

    def base(self, region: str) -> str:
        floor, ceiling = self.ranges[region]
        amount = Decimal(self.rng.randrange(int(floor) + 1, int(ceiling)))
        return str(amount) if self.rng.random() < 0.7 else f"{amount:.2f}"

    def region(self) -> str:
        codes = list(_REGIONS)
        return self.rng.choices(codes, weights=[_REGIONS[c][1] for c in codes])[0]

    def phone(self) -> str:
        return "1" + self.rng.choice("35789") + "".join(self.rng.choice("0123456789") for _ in range(9))

    def clean_row(self, person: _Person, *, departed: bool | None = None) -> dict[str, str]:
        region = person.region
        sixteen = dt.date(person.birth.year + 16, 12, 31)
        hire = self.between(max(sixteen + dt.timedelta(days=400), dt.date(2005, 1, 1)), self.period_end)
        if departed is None:
            departed = self.rng.random() < 0.15 and hire < self.period_start
        employer, employer_name = self.rng.choice(self.employers[region])
        gender = "男" if int(person.id_number[16]) % 2 else "女"
        row = {
            "姓名": person.name,
            "性别": gender if self.rng.random() < 0.9 else "",
            "身份证号码": person.id_number,
            "出生日期": self.date_text(person.birth),
            "手机号码": self.phone(),
            "单位名称": employer_name,
            "统一社会信用代码": employer,
            "参保地": _REGIONS[region][0] if self.rng.random() < 0.9 else region,
            "原参保地": "",
            "入职日期": self.date_text(hire),
            "离职日期": "",
            "人员状态": "在职",
            "是否缴费": "是",
            "参保险种": self.rng.choice(_TYPES),
            "缴费基数(元)": self.base(region),
            "所属期": self.period.replace("-", ""),
        }
        if departed:
            leave = self.between(hire + dt.timedelta(days=30), self.period_end)
            row.update({"离职日期": self.date_text(leave), "人员状态": "离职", "是否缴费": "否"})
        return row


def generate(
    rows: int, out: str | Path, *, encoding: str = "gbk", seed: int = 20240601, defect_rate: float = 0.1,
    period: str = "2024-06", manifest: str | Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write ``rows`` data rows to ``out`` and the manifest; returns the manifest."""
    if rows < len(_SANDBOX_PERSONS) + 2 * len(DEFECT_KINDS):
        raise ValueError(f"at least {len(_SANDBOX_PERSONS) + 2 * len(DEFECT_KINDS)} rows are needed for every defect")
    out = Path(out)
    gen = _Generator(seed, period)
    rng = gen.rng
    per_kind = max(1, round(rows * defect_rate / len(DEFECT_KINDS)))
    # Defects start after a run of clean rows, so cross-row defects have earlier rows to conflict with.
    first_defect = len(_SANDBOX_PERSONS) + len(DEFECT_KINDS)
    slots = rng.sample(range(first_defect, rows), min(per_kind * len(DEFECT_KINDS), rows - first_defect))
    kind_at = {slot: DEFECT_KINDS[i % len(DEFECT_KINDS)] for i, slot in enumerate(sorted(slots, key=lambda _: rng.random()))}
    by_kind: dict[str, list[int]] = {kind: [] for kind in DEFECT_KINDS}
    sandbox_rows: list[int] = []

    with open(out, "wb") as stream:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for index in range(rows):
            number = index + 2  # the header is row 1
            kind = kind_at.get(index)
            if index < len(_SANDBOX_PERSONS):
                row = _sandbox_row(gen, index)
                sandbox_rows.append(number)
            elif kind is None:
                person = gen.new_person(gen.region())
                row = gen.clean_row(person)
                if row["人员状态"] == "在职":
                    gen.active.append(person)
            else:
                row = _defect_row(gen, kind)
                by_kind[kind].append(number)
            cells = [str(index + 1) if column == "序号" else row[column] for column in COLUMNS]
            if kind == "ragged_row":
                cells = cells[:-2] if rng.random() < 0.5 else [*cells, "备注：见附件"]
            writer.writerow(cells)
            data = buffer.getvalue().encode(encoding)
            if kind == "undecodable_row":
                data = data.replace(_UNDECODABLE_MARK.encode(encoding), b"\xff")
            stream.write(data)
            buffer.seek(0)
            buffer.truncate()

    result = {
        "file": out.name,
        "rows": rows,
        "encoding": encoding,
        "seed": seed,
        "period": period,
        "defect_rate": defect_rate,
        "columns": list(COLUMNS),
        "clean_rows": rows - sum(len(v) for v in by_kind.values()),
        "sandbox_person_rows": sandbox_rows,
        "defects": {kind: len(numbers) for kind, numbers in by_kind.items()},
        "defect_rows": by_kind,
    }
    manifest_path = Path(manifest) if manifest else out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result


def _sandbox_row(gen: _Generator, index: int) -> dict[str, str]:
    name, id_number, region, previous, hire = _SANDBOX_PERSONS[index]
    gen.ids.add(id_number)
    birth = ric.get_birth_date(id_number)
    gen.people.add((name, birth))
    row = gen.clean_row(_Person(name, id_number, birth, region), departed=False)
    row.update({
        "入职日期": hire.isoformat(),
        "统一社会信用代码": gen.employers[region][0][0],
        "单位名称": gen.employers[region][0][1],
        "参保险种": "养老、医疗",
        "性别": "",
        "原参保地": _REGIONS[previous][0] if previous else "",
    })  # fmt: skip
    return row


def _defect_row(gen: _Generator, kind: str) -> dict[str, str]:
    """A row that is clean except for the one defect ``kind`` names."""
    rng = gen.rng
    if kind == "hired_before_16":
        year = gen.period_start.year
        person = gen.new_person(gen.region(), earliest=year - 15, latest=year - 14)
        row = gen.clean_row(person, departed=False)
        row["入职日期"] = gen.date_text(gen.between(gen.period_start - dt.timedelta(days=90), gen.period_end))
        return row
    if kind in ("duplicate_id", "active_in_two_regions"):
        earlier = gen.take_active()
        region = earlier.region if kind == "duplicate_id" else rng.choice([c for c in _REGIONS if c != earlier.region])
        row = gen.clean_row(_Person(earlier.name, earlier.id_number, earlier.birth, region), departed=False)
        return row
    if kind == "likely_duplicate_person":
        earlier = gen.take_active()
        same = _Person(earlier.name, gen.id_number(earlier.birth, _gender_of(earlier.id_number)), earlier.birth,
                       gen.region())  # fmt: skip
        return gen.clean_row(same)
    person = gen.new_person(gen.region())
    row = gen.clean_row(person, departed=kind in ("leave_before_hire", "departed_without_leave_date",
                                                  "departed_still_contributing"))  # fmt: skip
    if kind == "required_field_missing":
        row["姓名"] = ""
    elif kind == "unparseable_value":
        column, bad = rng.choice((("入职日期", "2023-02-30"), ("入职日期", "2023年13月"), ("缴费基数(元)", "五千"),
                                   ("出生日期", "19900230")))  # fmt: skip
        row[column] = bad
    elif kind == "unknown_code":
        column, bad = rng.choice((("人员状态", "退休返聘"), ("参保地", "北京"), ("参保险种", "养老、大病医疗"),
                                   ("是否缴费", "待定")))  # fmt: skip
        row[column] = bad
    elif kind == "undecodable_row":
        row["姓名"] = row["姓名"][:1] + _UNDECODABLE_MARK + row["姓名"][1:]
    elif kind == "invalid_id_number":
        number = row["身份证号码"]
        wrong = next(c for c in "0123456789X" if c != number[-1] and c != ric.calc_check_digit(number[:-1] + "0"))
        row["身份证号码"] = number[:-1] + wrong
    elif kind == "invalid_uscc":
        code = row["统一社会信用代码"]
        row["统一社会信用代码"] = code[:-1] + next(c for c in "0123456789" if c != code[-1])
    elif kind == "birth_date_mismatch":
        row["出生日期"] = gen.date_text(person.birth + dt.timedelta(days=rng.choice((1, 31, 365))))
    elif kind == "gender_mismatch":
        row["性别"] = "女" if _gender_of(person.id_number) == "male" else "男"
    elif kind == "leave_before_hire":
        hire = _read_date(row["入职日期"])
        row["离职日期"] = gen.date_text(hire - dt.timedelta(days=rng.randint(1, 300)))
    elif kind == "departed_without_leave_date":
        row["离职日期"] = ""
    elif kind == "departed_still_contributing":
        row["是否缴费"] = "是"
    elif kind == "base_out_of_range":
        floor, ceiling = gen.ranges[person.region]
        row["缴费基数(元)"] = str(int(floor) - rng.randint(100, 1500)) if rng.random() < 0.5 else str(int(ceiling) * 2)
    return row


def _gender_of(id_number: str) -> str:
    return "male" if int(id_number[16]) % 2 else "female"


def _read_date(text: str) -> dt.date:
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise ValueError(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="data rows to write")
    parser.add_argument("--out", required=True, help="the CSV file to write")
    parser.add_argument("--encoding", default="gbk", help="gbk (default), gb18030 or utf-8")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--defect-rate", type=float, default=0.1, help="share of rows with a defect (default 0.1)")
    parser.add_argument("--period", default="2024-06", help="the month the export describes (YYYY-MM)")
    parser.add_argument("--manifest", help="where to write the manifest (default: OUT.manifest.json)")
    args = parser.parse_args(argv)
    result = generate(
        args.rows, args.out, encoding=args.encoding, seed=args.seed, defect_rate=args.defect_rate,
        period=args.period, manifest=args.manifest,
    )  # fmt: skip
    print(json.dumps({k: result[k] for k in ("file", "rows", "encoding", "seed", "clean_rows", "defects")},
                     ensure_ascii=False, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
