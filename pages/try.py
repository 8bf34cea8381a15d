"""Try: a new image, video, text or camera photo; concepts with scores, the reasons, and a video's timeline."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.embedding import has_text_space
from core.errors import ConceptlabError, InputError
from core.inputs import IMAGE_SUFFIXES, TEXT_SUFFIXES, VIDEO_SUFFIXES, decode_image, read_texts
from core.inputs.uploads import read_camera_photo, read_uploads
from core.prediction import Prediction, predict
from core.views.faces import UNKNOWN, answer_faces, draw_faces
from core.views.gallery import load_video_moments
from core.views.reports import name_head
from core.views.timeline import find_concept_segments, format_clock
from pages.account import wait_for_demo_turn
from pages.common import TRAIN, get_embedder, md, plural, render_cards, require_project, sentence, show_error, start_page

start_page()
project = require_project()
st.title("Try")
st.caption("Give the model something it has never seen, and see which concepts it finds.")

versions = project.store.list_versions(report_keys=())
if not versions:
    st.info("No trained model yet: train one on the Train page.", icon=":material/lightbulb:")
    st.page_link(TRAIN, label="Go to Train", icon=":material/model_training:")
    st.stop()

active = int(project.store.get_meta("active_version") or versions[-1][0])
ids = [v[0] for v in versions][::-1]
source_col, version_col = st.columns([3, 1])
demo = st.session_state.get("demo")  # a demo link: its one version, no labelled examples shown
if demo is not None:
    version = demo.version
    version_col.caption(f"A demo of {md(project.name)}, version {version}")
else:
    version = version_col.selectbox(
        "Model version",
        ids,
        index=ids.index(active),
        format_func=lambda v: f"Version {v}" + (" (in use)" if v == active else ""),
        key="try_version",
    )
source = (
    source_col.segmented_control("What to try", ["File", "Text", "Camera"], default="File", key="try_source", label_visibility="collapsed")
    or "File"
)

raw = None
if source == "File":
    upload = st.file_uploader(
        "An image, a video or a .txt file",
        type=sorted(s.lstrip(".") for s in IMAGE_SUFFIXES | VIDEO_SUFFIXES | TEXT_SUFFIXES),
        key="try_file",
    )
    if upload is not None:
        raw = next(read_uploads([(upload.name, upload.getvalue())]), None)
elif source == "Text" and not has_text_space(project.embedder_spec):
    st.info(
        f"This project's embedder ({project.embedder_spec}) finds faces in photos and videos: "
        "it has no text space, so it cannot read a text.",
        icon=":material/info:",
    )
elif source == "Text":
    with st.form("try_text_form", border=False):
        text = st.text_area("Text", height=120, key="try_text", placeholder="Type or paste a text")
        st.form_submit_button("Predict", type="primary", icon=":material/science:")
    if text and text.strip():
        raw = next(read_texts([text]), None)
else:
    photo = st.camera_input("Take a photo", key="try_camera")
    if photo is not None:
        raw = read_camera_photo(photo.getvalue())

if raw is None:
    st.stop()
if isinstance(raw, InputError):
    show_error(raw)
    st.stop()

# One prediction per input and version, kept across reruns (a chart click must not re-embed a video).
key = (project.name, raw.sha256, version, project.store.generation())
cached = st.session_state.get("try_result")
if cached is None or cached[0] != key:
    if demo is not None and (wait := wait_for_demo_turn(demo)) > 0:
        st.warning(f"This demo link is busy: try again in {wait:.0f} s.", icon=":material/hourglass_top:")
        st.stop()
    try:
        get_embedder(project)
        with st.spinner("Looking…"):
            # A photo of faces gives one prediction per face (then one error per face refused); anything else, one.
            results = list(predict(project, [raw], version=version, explain=4))
    except ConceptlabError as e:
        show_error(e)
        st.stop()
    st.session_state.try_result = cached = (key, results)
results = cached[1]
predictions = [r for r in results if isinstance(r, Prediction)]
if not predictions:
    show_error(results[0])
    st.stop()
prediction: Prediction = predictions[0]
faces = answer_faces(predictions) if raw.kind == "image" else []
refused = [r for r in results if isinstance(r, InputError)]

st.divider()
if faces:
    # Every face of the photo, boxed and named (or "unknown"), then each face's answer.
    photo = decode_image(raw.data, raw.name)
    st.image(draw_faces(photo, faces), caption=md(raw.name), width="stretch")
    st.markdown(f"**{plural(len(faces), 'face')} in this photo**")
    for answer in faces:
        if answer.outcome == "named":
            st.markdown(f"{answer.number}. **{md(answer.name)}** ({answer.score:.0%})")
        elif answer.outcome == UNKNOWN:
            st.markdown(f"{answer.number}. **unknown**: unlike every person you labelled")
        else:
            st.markdown(f"{answer.number}. **no match**: no person passes their threshold")
    for error in refused:
        st.caption(md(sentence(f"{error.name.rsplit('#', 1)[-1]}: {error.reason}")))
    if len(predictions) > 1:
        picked = st.selectbox(
            "Details of face",
            range(len(predictions)),
            format_func=lambda i: f"Face {faces[i].number}: {faces[i].name}",
            key=f"try_face_{raw.sha256}",
        )
        prediction = predictions[picked]
shown, scores = st.columns([2, 3])
with shown:
    if faces:
        st.caption(f"Face {prediction.face['number']} of {len(faces)}")
    elif raw.kind == "image":
        st.image(raw.data, width="stretch")
    elif raw.kind == "video":
        st.video(raw.data)
    else:
        with st.container(border=True, height=260):
            st.text(raw.text)
    if source != "Text" and not faces:
        st.caption(md(raw.name))

with scores:
    if not prediction.concepts:
        st.info(
            "This model has no concept for this kind of input: label a few examples of this kind and train again.",
            icon=":material/lightbulb:",
        )
    else:
        best = prediction.concepts[0]
        # Each concept's own threshold decides (the best-F1 one from training, or the one saved on the Train page).
        if prediction.unknown:
            st.caption("The model does not recognise this")
            st.markdown("### Not like anything you labelled")
            st.caption(md(sentence(prediction.unknown_reason)))
        elif prediction.matches:
            st.caption("The model sees")
            st.markdown(f"### {md(', '.join(prediction.matches))}")
        else:
            st.caption("The model is not sure")
            st.markdown("### None of the concepts passes its threshold")
        st.caption(f"Top score {best.score:.0%} · {name_head(best.head)} head · version {prediction.version}")
        table = pd.DataFrame(
            {
                "concept": [f"{c.concept}  {c.score:.0%}" for c in prediction.concepts],
                "score": [c.score for c in prediction.concepts],
                "threshold": [c.threshold for c in prediction.concepts],
                "passes": [c.passes for c in prediction.concepts],
                "head": [name_head(c.head) for c in prediction.concepts],
            }
        )
        bars = (
            alt.Chart(table)
            .mark_bar(cornerRadiusEnd=4)
            .encode(
                x=alt.X("score:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
                y=alt.Y("concept:N", sort="-x", title=None, axis=alt.Axis(labelLimit=240)),
                color=alt.condition(alt.datum.passes, alt.value("#4f46e5"), alt.value("#c7c9d9")),
                tooltip=[alt.Tooltip("score:Q", format=".1%"), alt.Tooltip("threshold:Q", format=".1%"), "head"],
            )
            .properties(height=alt.Step(34))  # a fixed height squashes the bars; a step per concept does not
        )
        st.altair_chart(bars, width="stretch")

if prediction.frames is not None and prediction.frames.scores:
    st.subheader("Over time")
    # When each concept passes its threshold: a clip half of roses is not "ant" because ants score high somewhere.
    timelines = find_concept_segments(prediction)
    for timeline in timelines:
        spans = ", ".join(f"{format_clock(a)}–{format_clock(b)}" for a, b in timeline.segments)
        st.markdown(f"**{md(timeline.concept)}**: {spans} ({timeline.seconds:.0f} of {timeline.duration:.0f} s)")
    if not timelines:
        st.caption("No concept passes its threshold at any moment of this video.")
    frames = prediction.frames
    timeline = pd.DataFrame(
        [{"second": t, "concept": c, "score": s} for c, values in frames.scores.items() for t, s in zip(frames.times, values)]
    )
    chart = (
        alt.Chart(timeline)
        .mark_line(point=True)
        .encode(
            x=alt.X("second:Q", title="seconds"),
            y=alt.Y("score:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("concept:N", title="concept"),
            tooltip=["concept", "second", alt.Tooltip("score:Q", format=".1%")],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")
    if prediction.concepts:
        top = prediction.concepts[0].concept
        try:
            moments = load_video_moments(raw.data, raw.name, raw.suffix, frames, top)
        except ConceptlabError as e:
            st.caption(md(sentence(e)))
            moments = []
        if moments:
            st.markdown(f"**Where {md(top)} shows most**")
            for col, moment in zip(st.columns(len(moments)), moments):
                col.image(moment.image, caption=f"at {moment.time:.0f} s · {moment.score:.0%}", width="stretch")

if prediction.neighbours and demo is None:
    st.subheader("Why: the closest labelled examples")
    records = [r for r in (project.store.get_input(n.input_id) for n in prediction.neighbours) if r is not None]
    notes = {n.input_id: f"{n.similarity:.0%} similar" for n in prediction.neighbours}
    render_cards(project, records, notes=notes)
