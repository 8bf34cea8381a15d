"""conceptlab's studio: the sidebar with the project picker, then the four pages.

Run with ``make run`` (or ``streamlit run app.py``). Pages live in ``pages/``; what they share
is in ``pages/common.py``.
"""

from __future__ import annotations

import os
import time

import streamlit as st

from core.access import Role, read_log, role_in
from core.embedding.weights import clip_weights_available, download_clip_weights
from core.errors import ConceptlabError, WeightsMissingError
from core.names import make_name_key
from core.network import OPEN_TO_NETWORK_ENV, describe_studio_reach, refuse_network_without_accounts
from core.storage.projects import create_project, delete_project, list_projects, rename_project
from pages.account import accounts_on, ask_the_browser_who_acts, find_demo_link, find_signed_in, sign_out, stop_unless_ready
from pages.common import LABEL, TRAIN, TRY, UPLOAD, current_project, flash, md, plural, sentence, show_flashes

st.set_page_config(page_title="conceptlab", page_icon=":material/neurology:", layout="wide", initial_sidebar_state="expanded")

EMBEDDERS = {
    "clip": "CLIP: best quality, concepts work from their name alone",
    "lite": "Lite: works offline, good on photos and texts",
    "tiny": "Tiny: instant but crude, for tests and very slow machines",
}
CLIP_DOWNLOAD_MB = 605

# Who can reach the studio: `make run` (conceptlab studio) serves 127.0.0.1, and so does
# .streamlit/config.toml for a bare `streamlit run`; a network address needs the loud override.
ADDRESS = st.get_option("server.address") or ""
OPENED = os.environ.get(OPEN_TO_NETWORK_ENV) == "1"
if refusal := refuse_network_without_accounts(ADDRESS, OPENED, accounts_on()):
    st.error(md(refusal) + ".", icon=":material/lock:")
    st.stop()
ask_the_browser_who_acts()
if (DEMO := find_demo_link()) is not None:
    # A demo link shows the Try page of its one version and nothing else: no sidebar, no other page.
    st.session_state.project = next((p.name for p in list_projects()), None)  # the one project its visitor may see
    st.navigation([st.Page(TRY, title="Try")], position="hidden").run()
    st.stop()
USER = find_signed_in() if accounts_on() else None


def _to_upload() -> None:
    # Upload is served at the root: /upload, typed or bookmarked, goes there with the address's project.
    st.switch_page(UPLOAD, query_params=st.query_params.to_dict())


navigation = st.navigation(
    [
        # The default page's own url_path only names it inside Streamlit; "upload" is the hidden page's, which leads here.
        st.Page(UPLOAD, title="Upload", icon=":material/upload:", default=True, url_path="start"),
        st.Page(_to_upload, title="Upload", url_path="upload", visibility="hidden"),
        st.Page(LABEL, title="Label", icon=":material/sell:"),
        st.Page(TRAIN, title="Train", icon=":material/model_training:"),
        st.Page(TRY, title="Try", icon=":material/science:"),
    ],
    # Before a sign-in the pages are named but not shown: the address (/label?project=...) still leads there after it.
    position="top" if USER is not None or not accounts_on() else "hidden",
)
if accounts_on():
    stop_unless_ready(USER)  # with accounts on, nothing below shows before a sign-in


@st.cache_resource(show_spinner=False)
def _clip_on_disk() -> bool:
    # Asked once per process, and only when someone creates a project; a download clears the answer.
    try:
        return clip_weights_available("clip")
    except ConceptlabError:
        return False


# -- callbacks: they run before the script, so they may set the picker's state ---------


def _pick() -> None:
    st.session_state.project = st.session_state.project_picker


def _start_creating() -> None:
    st.session_state.creating = True
    st.session_state.pop("create_error", None)


def _stop_creating() -> None:
    st.session_state.creating = False


def _create() -> None:
    state = st.session_state
    name = (state.get("new_name") or "").strip()
    spec = (state.get("new_spec") or "").strip() or state.get("new_embedder") or "lite"
    if not name:
        state.create_error = "Give the project a name."
        return
    try:
        project = create_project(name, spec, exclusive=bool(state.get("new_exclusive")))
    except WeightsMissingError:
        state.create_error = "CLIP weights are not on this machine: download them with the button above, or choose Lite."
        return
    except ConceptlabError as e:
        state.create_error = sentence(e)
        return
    state.project = project.name
    state.creating = False
    state.new_name = ""
    state.pop("create_error", None)
    state.open_upload = True  # a new project starts where its files go in, whatever page the form was opened on
    flash(f"Project **{md(project.name)}** is ready. Add some files below, or try it with sample data.")


def _rename(old: str) -> None:
    st.session_state.pop("rename_error", None)
    new = (st.session_state.get("rename_to") or "").strip()
    if not new or new == old:
        return
    try:
        project = rename_project(old, new)
    except ConceptlabError as e:
        # Said under the field, in the sidebar, where the person typed: not at the top of the page.
        st.session_state.rename_error = (old, sentence(e))
        return
    st.session_state.project = project.name
    flash(f"Project renamed to **{md(project.name)}**.")


def _delete(name: str) -> None:
    st.session_state.confirm_delete = False
    try:
        delete_project(name)
    except ConceptlabError as e:
        flash(md(sentence(e)), "error")
        return
    st.session_state.project = None
    flash(f"Project **{md(name)}** deleted.", "info")


def _ask_delete(value: bool) -> None:
    st.session_state.confirm_delete = value


# -- the sidebar -------------------------------------------------------------------------


@st.dialog("Project log", width="large")
def show_project_log(project) -> None:
    """Who deleted, removed, imported or changed roles in this project, and when (its owners and admins see it)."""
    entries = read_log(project, limit=200)
    if not entries:
        st.caption("Nothing recorded yet: deleting, removing labels in bulk, importing models and changing roles are.")
        return
    st.dataframe(
        {
            "When": [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)) for e in entries],
            "Who": [e.user for e in entries],
            "What": [e.action for e in entries],
            "Details": [e.what for e in entries],
        },
        hide_index=True,
        width="stretch",
    )


def _describe_my_role() -> str:
    if USER.admin:
        return "admin"
    project = current_project()
    role = role_in(project) if project is not None else None
    return f"{role.word} of {project.name}" if role else "no role in this project"


def render_sidebar(projects: list) -> None:
    st.markdown("### :material/neurology: conceptlab")
    st.caption("Teach the computer your own concepts, in seconds.")
    names = [p.name for p in projects]
    if names:
        st.session_state.project_picker = st.session_state.project
        st.selectbox("Project", names, key="project_picker", on_change=_pick)
        info = next(p for p in projects if p.name == st.session_state.project)
        mode = "one concept per input" if info.exclusive else "any number of concepts per input"
        st.caption(
            f"{md(info.embedder.split(':')[0])} model · {plural(info.inputs, 'input')} · "
            f"{plural(info.concepts, 'concept')} · {plural(info.versions, 'model version')} · {mode}"
        )
    if USER is None or USER.admin:  # creating projects is an admin's (the engine refuses anyone else too)
        st.button("New project", icon=":material/add:", on_click=_start_creating, width="stretch")
    picked = current_project() if names else None
    # Renaming, deleting and the log are an owner's: others are not offered them (the engine refuses them too).
    if picked is not None and (role_in(picked) or 0) >= Role.OWNER:
        with st.expander("Project settings", icon=":material/settings:"):
            with st.form("rename_project", border=False):
                st.text_input("New name", key="rename_to", placeholder=st.session_state.project)
                st.form_submit_button("Rename", on_click=_rename, args=(st.session_state.project,))
            project = current_project()
            if project is not None and (role_in(project) or 0) >= Role.OWNER and st.button("Project log", icon=":material/history:"):
                show_project_log(project)
            failed = st.session_state.get("rename_error")
            if failed and failed[0] == st.session_state.project:  # only under the project it was about
                st.error(md(failed[1]), icon=":material/error:")
            if not st.session_state.get("confirm_delete"):
                st.button("Delete this project…", icon=":material/delete:", on_click=_ask_delete, args=(True,))
            else:
                st.warning(f"Delete **{md(st.session_state.project)}** with all its files, labels and models? This cannot be undone.")
                left, right = st.columns(2)
                left.button("Delete for good", type="primary", on_click=_delete, args=(st.session_state.project,))
                right.button("Keep it", on_click=_ask_delete, args=(False,))
    st.caption(f":material/lock: {describe_studio_reach(ADDRESS, st.get_option('server.port'), OPENED, accounts_on())}")
    if USER is not None:
        st.caption(f":material/person: Signed in as **{md(USER.name)}** · {md(_describe_my_role())}")
        st.button("Sign out", icon=":material/logout:", on_click=sign_out)


# -- creating a project (also the welcome screen) --------------------------------------


def render_create_project(first: bool) -> None:
    if first:
        st.title("Welcome to conceptlab")
        st.markdown(
            "Teach the computer **your own concepts** in seconds: upload a few images, videos or texts, "
            "say which ones show each concept, train, and try it on something new. Start with a project."
        )
    else:
        st.title("New project")
    with st.spinner("Looking for CLIP weights on this machine…"):
        clip_ready = _clip_on_disk()
    if not clip_ready:
        render_clip_download()
    with st.form("create_project"):
        st.text_input("Project name", key="new_name", placeholder="e.g. Pets, Defects, Recipes", max_chars=64)
        st.selectbox(
            "Model",
            # CLIP is offered only once its weights are here: choosing it could not work before.
            [e for e in EMBEDDERS if clip_ready or e != "clip"],
            index=0,
            format_func=EMBEDDERS.get,
            key="new_embedder",
            help="The pretrained model that turns inputs into numbers. It is fixed for the life of the project.",
        )
        st.toggle(
            "Concepts are mutually exclusive",
            key="new_exclusive",
            help="On: every input is exactly one of the concepts (cat or dog). Off: an input can have several concepts, or none.",
        )
        with st.expander("Advanced"):
            st.text_input(
                "Embedder spec", key="new_spec", placeholder="clip:ViT-B-16:laion2b_s34b_b88k or clip:ViT-B-32:/path/to/checkpoint"
            )
        st.form_submit_button("Create project", type="primary", icon=":material/add:", on_click=_create)
    if st.session_state.get("create_error"):
        st.error(md(st.session_state.create_error), icon=":material/error:")
    if not first:
        st.button("Cancel", on_click=_stop_creating)


def render_clip_download() -> None:
    st.info(
        "CLIP weights are not on this machine, so **Lite** is chosen: it works fully offline. "
        f"CLIP is better and lets concepts work from their name alone; it is a one-time download of about {CLIP_DOWNLOAD_MB} MB.",
        icon=":material/info:",
    )
    if st.button("Download CLIP weights", icon=":material/download:"):
        bar = st.progress(0.0, text="Connecting…")

        def show(done: int, total: int | None) -> None:
            megabytes = done / 1e6
            fraction = 1.0 if total else min(megabytes / CLIP_DOWNLOAD_MB, 0.99)
            bar.progress(fraction, text=f"{megabytes:.0f} of about {CLIP_DOWNLOAD_MB} MB")

        st.session_state.pop("create_error", None)  # an older error would sit under this attempt's answer
        try:
            download_clip_weights("clip", progress=show, timeout_s=3600)
        except WeightsMissingError as e:
            bar.empty()
            # In the studio's words: no command-line flags, and where a checkpoint file goes instead.
            st.error(
                f"Could not download CLIP weights: {md(e.cause or 'the download failed')}. Use **Lite**, which needs nothing more, "
                "or copy a CLIP checkpoint file onto this machine and give its path under **Advanced** as "
                "`clip:ViT-B-32:/path/to/the/file`.",
                icon=":material/cloud_off:",
            )
            return
        except ConceptlabError as e:
            bar.empty()
            st.error(md(sentence(e)), icon=":material/cloud_off:")
            return
        _clip_on_disk.clear()
        flash("CLIP weights downloaded: CLIP is ready to use.")
        st.rerun()


def _follow_the_address(projects: list) -> None:
    """Keep the project in the address (``?project=Pets``), so a reload, back and forward, a bookmark or a shared link keep it.

    The address wins when it changed since this session last wrote it (a reload starts a new session,
    back/forward and pasted links change it); otherwise the session's own choice (the picker) wins.
    """
    state, names = st.session_state, [p.name for p in projects]
    asked = st.query_params.get("project")
    if asked is not None and asked != state.get("address_project"):
        found = next((n for n in names if n == asked), None) or next((n for n in names if make_name_key(n) == make_name_key(asked)), None)
        if found is not None:
            state.project = found
        elif names:
            shown = state.get("project") if state.get("project") in names else names[0]
            flash(f"There is no project **{md(asked)}** here (the address named it): showing **{md(shown)}**.", "warning")
    if state.get("project") not in names:
        state.project = names[0] if names else None
    if state.project is None:
        st.query_params.pop("project", None)
    elif asked != state.project:  # written only when it changes: each write is a step in the browser's history
        st.query_params["project"] = state.project
    state.address_project = state.project


projects = list_projects()
_follow_the_address(projects)
with st.sidebar:
    render_sidebar(projects)
show_flashes()
# "creating" holds the page the form was opened on: going to another page closes the form.
if st.session_state.get("creating") is True:
    st.session_state.creating = navigation.title
elif st.session_state.get("creating") not in (None, False, navigation.title):
    st.session_state.creating = False
if not projects and USER is not None and not USER.admin:
    st.info("You are not a member of any project yet: ask an admin to add you.", icon=":material/group:")
elif st.session_state.get("creating") or not projects:
    render_create_project(first=not projects)
elif st.session_state.pop("open_upload", False) and navigation.title != "Upload":
    st.switch_page(UPLOAD)
else:
    navigation.run()
