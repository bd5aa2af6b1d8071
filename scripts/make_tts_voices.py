"""Build development speech corpora from the text-to-speech voices of a Debian/Ubuntu machine.

Needs the programs ``festival`` (with the festvox voices), ``flite``, ``espeak-ng`` and ``sox``
(``apt-get install festival festvox-* flite espeak-ng sox``).  Writes single-speaker utterances,
16 kHz 16-bit mono WAV, in the VoxCeleb layout ``OUT/SET/SPEAKER/SESSION/NNNNN.wav``, a trial
list per held-out and tuning set, ``OUT/speakers.tsv`` (one row per speaker: set, source voice,
real person behind it, pitch/tempo change) and ``OUT/MANIFEST.md``.

Speakers:

* festival and flite voices were recorded from real people; voices of the same person (``kal``
  and ``slt`` exist in both engines; ``hindi``, ``marathi`` and ``telugu`` NSK are one speaker)
  are one *identity*, and identities -- never single voices or utterances -- are split between
  embedding training, tuning and held-out;
* espeak-ng voice variants (formant synthesis) are split the same way, each speaking several
  languages;
* every voice also gives pitch/tempo-shifted *siblings* (``sox pitch``/``tempo``), which count as
  different speakers and stay in the set of the voice they come from;
* the project's synthetic generator (``redimnet.testing.synth``) gives a training set (seed 11) and a
  held-out set (seed 23) of synthetic voices.

Texts are random sequences from small word lists written for this script (per language), so no
two utterances say the same thing.  Everything is deterministic for a given ``--seed``.

    python scripts/make_tts_voices.py /path/to/voices            # about 30-60 minutes on one core
"""

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

# --- word lists (written for this script; grammar does not matter, only varied phonetic content) ---
WORDS = {
    "en": (
        "the a one two three four five six seven eight nine ten morning evening night day week year time "
        "people house garden river mountain city village street road bridge window door table chair paper "
        "letter number story picture music water coffee bread apple orange market station train ticket "
        "office meeting question answer problem reason minute moment hour family friend brother sister mother "
        "father teacher doctor student weather summer winter spring autumn rain snow wind cloud sun moon star "
        "green yellow purple little large small early late quickly slowly always never often sometimes maybe "
        "really certainly perhaps together almost already because before after during between under over "
        "around through against without about think know believe remember forget understand explain listen "
        "speak talk walk run drive carry bring build open close begin finish change follow return travel "
        "visit wonder happen matter decide expect suppose agree promise borrow bought found gave kept left "
        "made paid sold told went wrote yesterday tomorrow tonight everything nothing something somebody "
        "nobody anyone beautiful careful difficult important possible different interesting comfortable "
        "electric chemistry history geography mathematics computer telephone microphone recording measure "
        "northern southern eastern western yesterday seventeen thirty forty hundred thousand million"
    ).split(),
    "cs": (
        "dobrý den ráno večer noc týden rok čas lidé dům zahrada řeka hora město vesnice ulice cesta most okno "
        "dveře stůl židle papír dopis číslo příběh obrázek hudba voda káva chléb jablko trh nádraží vlak lístek "
        "kancelář otázka odpověď problém důvod minuta hodina rodina přítel bratr sestra matka otec učitel lékař "
        "student počasí léto zima jaro podzim déšť sníh vítr mrak slunce měsíc hvězda zelený žlutý malý velký "
        "rychle pomalu vždycky nikdy často někdy možná opravdu spolu skoro protože před po během mezi pod nad "
        "myslet vědět věřit pamatovat zapomenout rozumět poslouchat mluvit chodit běžet řídit nést přinést "
        "stavět otevřít zavřít začít skončit změnit vrátit cestovat navštívit včera zítra dnes všechno nic"
    ).split(),
    "fi": (
        "hyvää päivää aamu ilta yö viikko vuosi aika ihmiset talo puutarha joki vuori kaupunki kylä katu tie "
        "silta ikkuna ovi pöytä tuoli paperi kirje numero tarina kuva musiikki vesi kahvi leipä omena tori "
        "asema juna lippu toimisto kokous kysymys vastaus ongelma syy minuutti hetki tunti perhe ystävä veli "
        "sisko äiti isä opettaja lääkäri opiskelija sää kesä talvi kevät syksy sade lumi tuuli pilvi aurinko "
        "kuu tähti vihreä keltainen pieni suuri nopeasti hitaasti aina koskaan usein joskus ehkä todella "
        "yhdessä melkein koska ennen jälkeen aikana välillä alla yllä ajatella tietää uskoa muistaa unohtaa "
        "ymmärtää kuunnella puhua kävellä juosta ajaa kantaa tuoda rakentaa avata sulkea aloittaa lopettaa"
    ).split(),
    "it": (
        "buongiorno mattina sera notte settimana anno tempo persone casa giardino fiume montagna città paese "
        "strada ponte finestra porta tavolo sedia carta lettera numero storia quadro musica acqua caffè pane "
        "mela mercato stazione treno biglietto ufficio riunione domanda risposta problema ragione minuto "
        "momento ora famiglia amico fratello sorella madre padre maestro medico studente estate inverno "
        "primavera autunno pioggia neve vento nuvola sole luna stella verde giallo piccolo grande presto "
        "tardi sempre mai spesso qualche volta forse davvero insieme quasi perché prima dopo durante sotto "
        "sopra pensare sapere credere ricordare dimenticare capire ascoltare parlare camminare correre "
        "guidare portare costruire aprire chiudere cominciare finire cambiare tornare viaggiare ieri domani"
    ).split(),
    "ca": (
        "bon dia matí vespre nit setmana any temps gent casa jardí riu muntanya ciutat poble carrer camí pont "
        "finestra porta taula cadira paper carta número història quadre música aigua cafè pa poma mercat "
        "estació tren bitllet oficina reunió pregunta resposta problema raó minut moment hora família amic "
        "germà germana mare pare mestre metge estudiant estiu hivern primavera tardor pluja neu vent núvol "
        "sol lluna estrella verd groc petit gran aviat tard sempre mai sovint potser realment junts gairebé "
        "perquè abans després durant sota sobre pensar saber creure recordar oblidar entendre escoltar parlar "
        "caminar córrer conduir portar construir obrir tancar començar acabar canviar tornar viatjar ahir demà"
    ).split(),
    "ru": (
        "добрый день утро вечер ночь неделя год время люди дом сад река гора город деревня улица дорога мост "
        "окно дверь стол стул бумага письмо число история картина музыка вода кофе хлеб яблоко рынок вокзал "
        "поезд билет работа вопрос ответ проблема причина минута момент час семья друг брат сестра мать отец "
        "учитель врач студент погода лето зима весна осень дождь снег ветер облако солнце луна звезда зелёный "
        "жёлтый маленький большой быстро медленно всегда никогда часто иногда может быть правда вместе почти "
        "потому что перед после между думать знать верить помнить забыть понимать слушать говорить ходить "
        "бежать водить нести строить открыть закрыть начать закончить вернуться путешествовать вчера завтра"
    ).split(),
    "hi": (
        "नमस्ते सुबह शाम रात हफ़्ता साल समय लोग घर बगीचा नदी पहाड़ शहर गाँव सड़क पुल खिड़की दरवाज़ा मेज़ "
        "कुर्सी काग़ज़ चिट्ठी संख्या कहानी तस्वीर संगीत पानी चाय रोटी सेब बाज़ार स्टेशन गाड़ी टिकट दफ़्तर सवाल "
        "जवाब समस्या कारण मिनट घंटा परिवार दोस्त भाई बहन माँ पिता अध्यापक डॉक्टर मौसम गर्मी सर्दी बारिश हवा "
        "बादल सूरज चाँद तारा हरा पीला छोटा बड़ा जल्दी धीरे हमेशा कभी अक्सर शायद सचमुच साथ क्योंकि पहले बाद "
        "सोचना जानना मानना याद भूलना समझना सुनना बोलना चलना दौड़ना लाना बनाना खोलना बंद शुरू ख़त्म कल आज"
    ).split(),
    "mr": (
        "नमस्कार सकाळ संध्याकाळ रात्र आठवडा वर्ष वेळ लोक घर बाग नदी डोंगर शहर गाव रस्ता पूल खिडकी दार टेबल "
        "खुर्ची कागद पत्र संख्या गोष्ट चित्र संगीत पाणी चहा भाकरी सफरचंद बाजार स्टेशन गाडी तिकीट कार्यालय "
        "प्रश्न उत्तर अडचण कारण मिनिट तास कुटुंब मित्र भाऊ बहीण आई वडील शिक्षक डॉक्टर हवामान उन्हाळा "
        "हिवाळा पाऊस वारा ढग सूर्य चंद्र तारा हिरवा पिवळा लहान मोठा लवकर हळू नेहमी कधी नेहमीच कदाचित "
        "खरंच एकत्र कारण आधी नंतर विचार माहीत विश्वास आठवण विसरणे समजणे ऐकणे बोलणे चालणे धावणे आणणे"
    ).split(),
    "te": (
        "నమస్కారం ఉదయం సాయంత్రం రాత్రి వారం సంవత్సరం సమయం ప్రజలు ఇల్లు తోట నది కొండ నగరం గ్రామం వీధి "
        "వంతెన కిటికీ తలుపు బల్ల కుర్చీ కాగితం ఉత్తరం సంఖ్య కథ చిత్రం సంగీతం నీళ్ళు కాఫీ రొట్టె ఆపిల్ "
        "మార్కెట్ రైలు టికెట్ కార్యాలయం ప్రశ్న సమాధానం సమస్య కారణం నిమిషం గంట కుటుంబం స్నేహితుడు "
        "అన్న చెల్లి అమ్మ నాన్న ఉపాధ్యాయుడు వైద్యుడు వాతావరణం వేసవి చలికాలం వర్షం గాలి మేఘం సూర్యుడు "
        "చంద్రుడు నక్షత్రం ఆకుపచ్చ పసుపు చిన్న పెద్ద త్వరగా నెమ్మదిగా ఎల్లప్పుడూ ఎప్పుడూ తరచుగా బహుశా"
    ).split(),
}

# festival voice -> (language, text encoding, identity); identities group voices of one real person
FESTIVAL = {
    "upc_ca_ona_hts": ("ca", "utf-8", "ona"),
    "czech_dita": ("cs", "iso-8859-2", "dita"),
    "czech_krb": ("cs", "iso-8859-2", "krb"),
    "czech_machac": ("cs", "iso-8859-2", "machac"),
    "czech_ph": ("cs", "iso-8859-2", "ph"),
    "kal_diphone": ("en", "utf-8", "kal"),
    "ked_diphone": ("en", "utf-8", "ked"),
    "hy_fi_mv_diphone": ("fi", "latin-1", "mv"),
    "suo_fi_lj_diphone": ("fi", "latin-1", "lj"),
    "hindi_NSK_diphone": ("hi", "utf-8", "nsk"),
    "marathi_NSK_diphone": ("mr", "utf-8", "nsk"),
    "telugu_NSK_diphone": ("te", "utf-8", "nsk"),
    "lp_diphone": ("it", "latin-1", "lp"),
    "pc_diphone": ("it", "latin-1", "pc"),
    "msu_ru_nsh_clunits": ("ru", "utf-8", "nsh"),
    "cmu_us_slt_arctic_hts": ("en", "utf-8", "slt"),
}
FLITE = {"kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}

# real-speaker identities by set (chosen once, by hand, to mix languages, engines and sexes; the
# held-out identities are never used to train or tune anything)
FESTFLITE_SPLIT = {
    "train": ["kal", "slt", "dita", "krb", "mv", "nsk"],
    "tune": ["ked", "ph", "pc", "lj"],
    "heldout": ["awb", "rms", "machac", "lp", "nsh", "ona"],
}
# pitch (semitones) and tempo of each sibling; (0, 1.0) is the voice itself
SIBLINGS = [(0, 1.0), (-4, 1.0), (4, 1.0), (-2, 0.9), (2, 1.1), (-6, 1.05), (6, 0.95)]
ESPEAK_LANGUAGES = ["en-us", "en-gb", "de", "fr-fr", "es", "it", "nl", "pl", "cs", "sv", "pt", "ro"]
ESPEAK_PITCHES = [50, 25, 75]  # espeak-ng -p: the variant's own pitch and two siblings
ESPEAK_EXCLUDED = {"fast", "whisperf", "whisper"}  # not conversational speech
SYNTH_TRAIN_SEED, SYNTH_HELDOUT_SEED, SYNTH_TUNE_SEED = 11, 23, 21


def sentence(rng: random.Random, language: str, shortest: int, longest: int) -> str:
    words = [rng.choice(WORDS[language]) for _ in range(rng.randint(shortest, longest))]
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def to_16k(source: Path, target: Path, semitones: float = 0, tempo: float = 1.0) -> None:
    """Mono 16 kHz 16-bit, peak at -3 dBFS, with a pitch/tempo change (sox)."""
    effects = ["channels", "1"]
    if semitones:
        effects += ["pitch", str(int(round(semitones * 100)))]
    if tempo != 1.0:
        effects += ["tempo", "-s", str(tempo)]
    effects += ["rate", "-h", "16k", "gain", "-n", "-3"]
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", str(source), "-b", "16", str(target), *effects], check=True, capture_output=True)


def festival_batch(voice: str, encoding: str, texts, folder: Path) -> list:
    """Synthesise ``texts`` with one festival voice in one process; the raw WAV paths."""
    lines = [f"(voice_{voice})"]
    paths = []
    for number, text in enumerate(texts):
        path = folder / f"raw-{number:05d}.wav"
        quoted = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{path}" \'riff)')
        paths.append(path)
    script = folder / "batch.scm"
    script.write_bytes(("\n".join(lines) + "\n").encode(encoding, errors="replace"))
    subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True, timeout=3600)
    return paths


def flite_one(voice: str, text: str, path: Path) -> Path:
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True, capture_output=True)
    return path


def espeak_one(variant: str, language: str, pitch: int, speed: int, text: str, path: Path) -> Path:
    command = ["espeak-ng", "-v", f"{language}+{variant}", "-p", str(pitch), "-s", str(speed), "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True)
    return path


def espeak_variants() -> list:
    listing = subprocess.run(["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True).stdout
    names = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[-1].startswith("!v/"):
            name = fields[-1][3:]
        elif len(fields) >= 5:
            name = next((f[3:] for f in fields if f.startswith("!v/")), "")
        else:
            continue
        if name and " " not in name and name not in ESPEAK_EXCLUDED:
            names.append(name)
    return sorted(set(names))


def speaker_name(prefix: str, voice: str, semitones: float, tempo: float) -> str:
    sign = "+" if semitones >= 0 else "-"
    return f"{prefix}-{voice}-p{sign}{abs(semitones):g}-t{tempo:g}"


def build_festflite(out: Path, rows: list, seed: int, per_voice: dict, work: Path) -> None:
    for identity_set, identities in FESTFLITE_SPLIT.items():
        count = per_voice[identity_set]
        shortest, longest = (4, 14) if identity_set == "train" else (3, 28)
        voices = [("festival", v, lang, enc, who) for v, (lang, enc, who) in FESTIVAL.items() if who in identities]
        voices += [("flite", v, "en", "utf-8", ident) for v, ident in FLITE.items() if ident in identities]
        for engine, voice, language, encoding, identity in voices:
            rng = random.Random(f"{seed}-{engine}-{voice}")
            texts = [sentence(rng, language, shortest, longest) for _ in range(count * len(SIBLINGS))]
            scratch = Path(tempfile.mkdtemp(dir=work))
            if engine == "festival":
                raw = festival_batch(voice, encoding, texts, scratch)
            else:
                raw = [flite_one(voice, t, scratch / f"raw-{n:05d}.wav") for n, t in enumerate(texts)]
            for index, (semitones, tempo) in enumerate(SIBLINGS):
                speaker = speaker_name("ff", identity, semitones, tempo)
                session = f"{engine}-{voice}"
                for number in range(count):
                    source = raw[index * count + number]
                    if not source.exists() or source.stat().st_size < 1000:
                        continue  # festival skips a text it cannot say
                    target = out / f"{identity_set}-festflite" / speaker / session / f"{number:05d}.wav"
                    to_16k(source, target, semitones, tempo)
                rows.append(
                    {
                        "set": f"{identity_set}-festflite",
                        "speaker": speaker,
                        "source": "festival/flite",
                        "engine": engine,
                        "voice": voice,
                        "language": language,
                        "identity": identity,
                        "semitones": semitones,
                        "tempo": tempo,
                    }
                )
            shutil.rmtree(scratch)
            print(f"{identity_set}: {engine} {voice} done", file=sys.stderr, flush=True)


def build_espeak(out: Path, rows: list, seed: int, per_voice: dict, work: Path) -> dict:
    variants = espeak_variants()
    rng = random.Random(f"{seed}-espeak-split")
    shuffled = variants[:]
    rng.shuffle(shuffled)
    split = {"heldout": sorted(shuffled[:16]), "tune": sorted(shuffled[16:28]), "train": sorted(shuffled[28:])}
    for identity_set, names in split.items():
        count = per_voice[identity_set]
        shortest, longest = (4, 14) if identity_set == "train" else (3, 28)
        for variant in names:
            for pitch in ESPEAK_PITCHES:
                speaker = f"es-{variant}-p{pitch}"
                talk = random.Random(f"{seed}-espeak-{variant}-{pitch}")
                languages = talk.sample(ESPEAK_LANGUAGES, 3)
                for number in range(count):
                    language = languages[number % 3]
                    text = sentence(talk, "en", shortest, longest)
                    raw = work / "espeak.wav"
                    espeak_one(variant, language, pitch, talk.randint(140, 200), text, raw)
                    to_16k(raw, out / f"{identity_set}-espeak" / speaker / language / f"{number:05d}.wav")
                rows.append(
                    {
                        "set": f"{identity_set}-espeak",
                        "speaker": speaker,
                        "source": "espeak-ng",
                        "engine": "espeak-ng",
                        "voice": variant,
                        "language": ",".join(languages),
                        "identity": variant,
                        "semitones": 0,
                        "tempo": 1.0,
                        "espeak_pitch": pitch,
                    }
                )
            print(f"{identity_set}: espeak-ng {variant} done", file=sys.stderr, flush=True)
    return split


def build_synthetic(out: Path, rows: list, train_speakers: int, heldout_speakers: int) -> None:
    from redimnet.testing.synth import generate_corpus, speaker_id

    for name, seed, speakers, utterances in (
        ("train-synth", SYNTH_TRAIN_SEED, train_speakers, 10),
        ("heldout-synth", SYNTH_HELDOUT_SEED, heldout_speakers, 10),
    ):
        # a speaker with all its files was written by an earlier (interrupted) run: same seed, same audio
        todo = [i for i in range(speakers) if len(list((out / name / speaker_id(i)).rglob("*.wav"))) < utterances]
        generate_corpus(out / name, todo, utterances=utterances, seed=seed, seconds=3.0)
        for index in range(speakers):
            rows.append(
                {
                    "set": name,
                    "speaker": speaker_id(index),
                    "source": "redimnet.testing.synth",
                    "engine": "redimnet.testing.synth",
                    "voice": f"seed{seed}-{index}",
                    "language": "-",
                    "identity": f"seed{seed}-{index}",
                    "semitones": 0,
                    "tempo": 1.0,
                }
            )
        print(f"{name} done", file=sys.stderr, flush=True)


def write_lists(out: Path, sets) -> dict:
    """``lists/SET/{wav.scp,utt2spk}`` (absolute paths) and, for tune/held-out sets, ``SET_trials.txt``."""
    summary = {}
    for name in sets:
        root = out / name
        files = sorted(root.rglob("*.wav"))
        folder = out / "lists" / name
        folder.mkdir(parents=True, exist_ok=True)
        utts = [(f.relative_to(root).as_posix(), f.relative_to(root).parts[0], f) for f in files]
        (folder / "wav.scp").write_text("".join(f"{u} {f}\n" for u, _, f in utts))
        (folder / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in utts))
        seconds = sum(sf.info(str(f)).duration for _, _, f in utts)
        summary[name] = {"utterances": len(utts), "speakers": len({s for _, s, _ in utts}), "hours": seconds / 3600}
        if not name.startswith("train"):
            # every same-speaker pair of 4 utterances per speaker, and as many different-speaker pairs
            rng = np.random.default_rng(0)
            by_speaker: dict = {}
            for u, s, _ in utts:
                by_speaker.setdefault(s, []).append(u)
            chosen = {s: sorted(rng.choice(v, size=min(6, len(v)), replace=False)) for s, v in by_speaker.items()}
            same = [(1, a, b) for v in chosen.values() for a, b in itertools.combinations(v, 2)]
            flat = [(u, s) for s, v in chosen.items() for u in v]
            different = []
            while len(different) < len(same):
                (a, sa), (b, sb) = (flat[i] for i in rng.choice(len(flat), size=2, replace=False))
                if sa != sb:
                    different.append((0, a, b))
            (out / f"{name}_trials.txt").write_text("".join(f"{k} {a} {b}\n" for k, a, b in same + different))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-utterances", type=int, default=16, help="per festival/flite voice and sibling")
    parser.add_argument("--conversation-utterances", type=int, default=30, help="per tune/held-out voice and sibling")
    parser.add_argument("--synth-train-speakers", type=int, default=400)
    parser.add_argument("--synth-heldout-speakers", type=int, default=40)
    parser.add_argument(
        "--only", help="comma-separated parts to build (festflite, espeak, synth; 'lists' only rewrites the lists)"
    )
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    per_voice = {"train": args.train_utterances, "tune": args.conversation_utterances}
    per_voice["heldout"] = args.conversation_utterances
    parts = args.only.split(",") if args.only else ["festflite", "espeak", "synth"]
    unknown = set(parts) - {"festflite", "espeak", "synth", "lists"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="tts-voices-"))
    try:
        for part in parts:
            rows: list = []
            if part == "festflite":
                build_festflite(out, rows, args.seed, per_voice, work)
            elif part == "espeak":
                split = build_espeak(out, rows, args.seed, per_voice, work)
                (out / "espeak_split.json").write_text(json.dumps(split, indent=1) + "\n")
            elif part == "synth":
                build_synthetic(out, rows, args.synth_train_speakers, args.synth_heldout_speakers)
            else:
                continue
            (out / f"speakers-{part}.json").write_text(json.dumps(rows, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # the lists cover every part built so far (each part keeps its own speakers-PART.json)
    rows = [row for path in sorted(out.glob("speakers-*.json")) for row in json.loads(path.read_text())]
    sets = sorted({r["set"] for r in rows})
    summary = write_lists(out, sets)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    columns = ["set", "speaker", "source", "engine", "voice", "language", "identity", "semitones", "tempo"]
    (out / "speakers.tsv").write_text(
        "\t".join(columns) + "\n" + "".join("\t".join(str(r.get(c, "")) for c in columns) + "\n" for r in rows)
    )
    (out / "MANIFEST.md").write_text(manifest(rows, summary))
    print(json.dumps(summary, indent=1))
    return 0


def manifest(rows: list, summary: dict) -> str:
    """MANIFEST.md: what each set holds and who may use it."""
    use = {
        "train": "embedding-model training only",
        "tune": "conversations for tuning diarization (and validation during training)",
        "heldout": "held-out conversations and EER: nobody trains or tunes on these",
    }
    lines = [
        "# Development voices",
        "",
        "Made by `python scripts/make_tts_voices.py OUT` (redimnet repository). 16 kHz 16-bit mono WAV,",
        "`SET/SPEAKER/SESSION/NNNNN.wav`. Split by voice (a real person behind festival/flite voices, an",
        "espeak-ng variant, a synthetic voice), never by utterance; pitch/tempo siblings stay with their voice",
        "and count as different speakers. `lists/SET/{wav.scp,utt2spk}`: Kaldi lists (absolute paths);",
        "`SET_trials.txt` (tune/held-out sets): verification trials, VoxCeleb format, ids relative to `SET/`.",
        "`speakers.tsv`: one row per speaker (set, source voice, identity, pitch/tempo change).",
        "",
        "| set | use | speakers | voices (identities) | utterances | hours |",
        "|---|---|---|---|---|---|",
    ]
    for name, info in sorted(summary.items()):
        identities = sorted({r["identity"] for r in rows if r["set"] == name})
        shown = ", ".join(identities) if len(identities) <= 20 else f"{len(identities)} voices"
        lines.append(
            f"| {name} | {use[name.split('-')[0]]} | {info['speakers']} | {shown} | {info['utterances']} | "
            f"{info['hours']:.2f} |"
        )
    lines += [
        "",
        "festival/flite identities: kal (festival kal_diphone + flite kal16), slt (festival cmu_us_slt_arctic_hts +",
        "flite slt) and nsk (hindi, marathi, telugu NSK diphones) are one person each; the other voices one each.",
        f"Siblings (semitones, tempo): {SIBLINGS}; espeak-ng pitches (-p): {ESPEAK_PITCHES}.",
        f"Synthetic voices: redimnet.synth seed {SYNTH_TRAIN_SEED} (train), {SYNTH_HELDOUT_SEED} (held-out);",
        f"seed {SYNTH_TUNE_SEED} is kept for tuning conversations (voices made on the fly, no files).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
