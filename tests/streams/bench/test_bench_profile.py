"""The worker's profile in the benchmark: py-spy's collapsed stacks read into own and on-the-stack shares."""

from streams.bench.profile import Profile, parse, profile_markdown

RAW = """\
run (streams/cli.py:10);handle (streams/pipeline/worker.py:80);apply (processors/district.py:120);rank (processors/spatial.py:40) 6
run (streams/cli.py:10);handle (streams/pipeline/worker.py:80);validate_json (pydantic/main.py:600) 3
run (streams/cli.py:10);send (/x/site-packages/aiokafka/producer/producer.py:400) 1
not a stack line
"""


def test_own_time_is_the_innermost_frame_and_the_stack_counts_each_function_once():
    profile = parse(RAW)
    assert profile.samples == 10
    assert profile.own["rank (processors/spatial.py)"] == 6
    assert profile.total["handle (streams/pipeline/worker.py)"] == 9 and profile.total["run (streams/cli.py)"] == 10
    # the innermost frame's module decides the area; site-packages is trimmed from paths
    assert profile.areas == {"district core and intake rules (processors/)": 6,
                             "validation and JSON (pydantic, pydantic-core)": 3, "Kafka client (aiokafka)": 1}
    assert "send (aiokafka/producer/producer.py)" in profile.own


def test_the_report_says_why_when_there_is_no_profile():
    text = "\n".join(profile_markdown(Profile(error="py-spy is not installed")))
    assert "No profile in this run: py-spy is not installed." in text
    rows = [line for line in profile_markdown(parse(RAW)) if line.startswith("| `")]
    assert rows[0] == "| `rank (processors/spatial.py)` | 60.0 % | 60.0 % |"
