"""The Train page's demo links: make a read-only link to one version's Try page, see them, revoke them."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

import streamlit as st

from core.access import Action, ShareStore, current_actor
from core.errors import ConceptlabError
from core.storage.projects import Project
from pages.common import md, refusal, sentence


def _make(project: Project, version: int) -> None:
    state = st.session_state
    actor = current_actor()
    try:
        share, token = ShareStore().make_share(project, version, state.demo_until, actor.name if actor else "this computer's user")
    except ConceptlabError as e:
        state.demo_made = ("error", sentence(e))
        return
    state.demo_made = ("made", f"/?share={token}", share.id)


def _revoke(project: Project, share_id: str) -> None:
    try:
        ShareStore().revoke_share(project, share_id)
    except ConceptlabError as e:
        st.session_state.demo_made = ("error", sentence(e))


def render_demo_links(project: Project, version: int) -> None:
    """Inside the Share expander: a form for a new link to ``version``, the link just made (shown once), and the links so far."""
    st.markdown("**A demo link**")
    if why := refusal(project, Action.SHARE):
        st.caption(md(why))
        return
    st.caption(
        f"Opens only a Try page for version {version}: upload, camera or a typed text, no inputs, labels or other projects. "
        "Anyone who can open the studio's address and has the link can use it until it expires."
    )
    with st.form("demo_link", border=False):
        st.date_input("Works until", value=dt.date.today() + dt.timedelta(days=7), min_value=dt.date.today(), key="demo_until")
        st.form_submit_button("Make a demo link", icon=":material/link:", on_click=_make, args=(project, version))
    made = st.session_state.pop("demo_made", None)
    if made and made[0] == "error":
        st.error(md(made[1]), icon=":material/error:")
    elif made:
        st.success(f"Demo link {made[2]} made. Copy it now: it is shown only this once.", icon=":material/link:")
        address = urlsplit(st.context.url or "")
        st.code(f"{address.scheme}://{address.netloc}{made[1]}" if address.netloc else made[1], language=None)
    links = [s for s in ShareStore().list_shares(project) if not s.revoked and s.expires_at > time.time()]
    for share in links:
        until = time.strftime("%Y-%m-%d", time.localtime(share.expires_at - 1))
        text_col, button_col = st.columns([4, 1], vertical_alignment="center")
        text_col.caption(f"Link {share.id}: version {share.version}, until {until}, made by {md(share.made_by)}")
        button_col.button("Revoke", key=f"revoke_{share.id}", on_click=_revoke, args=(project, share.id))
