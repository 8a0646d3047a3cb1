"""scene01 rule files: the packaged YAML loads and holds the real channel limits; a folder can
replace a file; broken files fail at load time with a ConfigError that names the problem."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from jisik.apps.marketing.rules import fill, load_rules
from jisik.core.errors import ConfigError

PACKAGED = Path(str(resources.files("jisik.apps.marketing") / "rules"))


def test_packaged_rules_have_the_channel_limits() -> None:
    rules = load_rules()
    ch = rules.channels
    assert list(ch) == ["PUSH", "알림톡", "친구톡", "SMS", "LMS"]
    assert (ch["SMS"].unit, ch["SMS"].body.max) == ("euc-kr", 90)
    assert (ch["LMS"].unit, ch["LMS"].body.max, ch["LMS"].title and ch["LMS"].title.max) == ("euc-kr", 2000, 40)
    assert (ch["알림톡"].unit, ch["알림톡"].body.max, ch["알림톡"].ad.allowed, ch["알림톡"].variables) == \
        ("chars", 1000, False, True)
    assert ch["친구톡"].ad.allowed and ch["친구톡"].ad.prefix == "(광고)"
    assert ch["PUSH"].title is not None and ch["PUSH"].title.required and ch["PUSH"].ad.prefix_field == "title"
    assert rules.opt_out_text(ch["SMS"]) == "무료거부 080-000-0000"
    assert "시니어세대" in rules.audiences and rules.audiences["시니어세대"].avoid
    assert rules.message_types["광고심의문구"].advertising and not rules.message_types["정보성안내"].advertising


def test_fill_keeps_kakao_variables_and_needs_every_field() -> None:
    assert fill("#{고객명}님, {event} 소식입니다.", {"event": "감사 이벤트"}) == "#{고객명}님, 감사 이벤트 소식입니다."
    assert fill("조건: {condition}", {"event": "x"}) is None
    assert fill("조건: {condition}", {"condition": ""}) is None


def test_a_folder_replaces_one_file(tmp_path: Path) -> None:
    (tmp_path / "audiences.yaml").write_text(
        "audiences:\n  전체:\n    tone: 담백한\n  은퇴준비세대:\n    tone: 차분한\n    avoid: [대박]\n", encoding="utf-8")
    rules = load_rules(tmp_path)
    assert list(rules.audiences) == ["전체", "은퇴준비세대"]
    assert list(rules.channels) == list(load_rules().channels)  # the other files stay packaged


@pytest.mark.parametrize(("name", "text", "says"), [
    ("compliance.yaml", "forbidden:\n  - {id: BAD, pattern: '(unclosed', message: x}\n", "BAD"),
    ("channels.yaml", "channels:\n  X:\n    label: x\n    unit: chars\n    body: {max: 10}\n    format: f\n"
                      "    template: {body: ['{no_such_field}']}\n", "no_such_field"),
    ("channels.yaml", "channels:\n  X:\n    label: x\n    unit: bytes\n    body: {max: 10}\n    format: f\n"
                      "    template: {body: ['a']}\n", "unit"),
    ("message_types.yaml", "- a list\n", "not a mapping"),
    ("generation.yaml", "fields: {}\n", "retry"),
])
def test_broken_rule_files_fail_at_load(tmp_path: Path, name: str, text: str, says: str) -> None:
    base = load_rules()
    if name == "compliance.yaml":  # a complete file with one broken rule added
        text = (PACKAGED / name).read_text(encoding="utf-8").replace("forbidden:\n", text, 1)
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert says in str(err.value)
    assert base.channels  # the packaged rules are unaffected


def test_a_missing_channel_check_message_is_a_config_error(tmp_path: Path) -> None:
    text = (PACKAGED / "compliance.yaml").read_text(encoding="utf-8").replace("  TONE-AVOID:", "  TONE-AVOIDED:")
    (tmp_path / "compliance.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="TONE-AVOID"):
        load_rules(tmp_path)
