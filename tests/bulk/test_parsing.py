"""Reading ids from a paste or an uploaded CSV/TXT file."""

from experiments_app.bulk.parsing import parse_ids


def messages(result) -> list[str]:
    return [str(problem) for problem in result.problems]


def test_plain_lines_are_trimmed_and_deduplicated_keeping_the_first_occurrence():
    result = parse_ids(b"  alice \nbob\r\nalice\n\tcarol\nbob\n\n\n")
    assert result.ok
    assert result.ids == ["alice", "bob", "carol"]
    assert result.duplicates == 2


def test_csv_takes_the_user_id_column_with_quotes_and_other_columns():
    result = parse_ids('name,user_id,team\n"Smith, Ann",u-1,qa\nBob,u-2,qa\nAnn again,u-1,ops\n')
    assert result.ok and result.column == "user_id"
    assert result.ids == ["u-1", "u-2"]
    assert result.duplicates == 1


def test_csv_falls_back_to_device_id_then_id_and_accepts_semicolons_and_a_bom():
    assert parse_ids("\ufeffdevice_id;label\nd1;x\nd2;y\n").ids == ["d1", "d2"]
    assert parse_ids("ID,comment\n42,x\n43,y\n").ids == ["42", "43"]
    assert parse_ids("user_id\nonly-one-column\n").ids == ["only-one-column"]


def test_csv_without_an_id_column_is_refused_on_line_1():
    result = parse_ids("email,name\na@example.com,A\n")
    assert not result.ok
    assert messages(result) == ["line 1: has no column named user_id, device_id or id"]


def test_empty_overlong_and_control_character_lines_are_reported_with_their_numbers():
    text = "good-1\n\n" + "x" * 257 + "\nbad\x07bell\ngood-2\n   \nbad\x00nul\n"
    result = parse_ids(text)
    assert not result.ok
    assert messages(result) == [
        "line 2: is empty",
        "line 3: is 257 characters long (at most 256)",
        "line 4: contains a control character",
        "line 6: is empty",
        "line 7: contains a control character",
    ]
    assert result.invalid == 5
    assert result.ids == ["good-1", "good-2"]


def test_a_256_character_id_is_fine():
    assert parse_ids("y" * 256).ok


def test_csv_rows_missing_the_column_or_empty_are_reported_with_file_line_numbers():
    result = parse_ids("team,user_id\nqa,u1\nqa\nqa,\nqa,u2\n")
    assert messages(result) == ["line 3: has no user_id value", "line 4: is empty"]
    assert result.ids == ["u1", "u2"]


def test_non_utf8_input_is_reported_line_by_line_and_nothing_is_used():
    result = parse_ids("fine\n".encode() + b"caf\xe9\n" + "ok\n".encode() + b"\xff\xfe\n")
    assert not result.ok
    assert messages(result) == ["line 2: is not valid UTF-8", "line 4: is not valid UTF-8"]
    assert result.ids == []


def test_more_than_the_cap_of_distinct_ids_is_refused_but_duplicates_do_not_count():
    assert parse_ids("\n".join(f"u{n}" for n in range(50_000)) + "\nu1\nu2\n").ok
    result = parse_ids("\n".join(f"u{n}" for n in range(50_001)))
    assert not result.ok
    assert messages(result) == ["50,001 distinct ids: at most 50,000 in one job."]


def test_no_ids_at_all_is_a_problem():
    assert messages(parse_ids("\n\n")) == ["There are no ids."]
    assert messages(parse_ids(b"")) == ["There are no ids."]
    assert messages(parse_ids("user_id\n")) == ["There are no ids."]
