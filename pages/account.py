"""Signing in to the studio when accounts are on (``conceptlab studio --accounts``).

The browser keeps a session cookie holding a random token; the data home keeps only the token's
hash (core/access/users.py), so a sign-out or a disabled account ends the session at once. Every
engine call checks the signed-in person's role (core/access/): ``find_actor_with`` tells the engine
to look for them in this browser session, so widget callbacks, which run before any page code, are
checked as well as the pages.
"""

from __future__ import annotations

import os

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.access import NOBODY, Actor, Share, ShareStore, SignInError, User, UserStore, find_actor_with
from core.errors import ConceptlabError
from core.network import ACCOUNTS_ENV
from core.serving.limits import RateLimiter
from pages.common import md, sentence

COOKIE = "conceptlab_session"
DEMO_REQUESTS_PER_MINUTE = 30
_COOKIE_JS = """
export default function ({ data }) {
  // Strict: the cookie is never sent with a request another site starts. Secure wherever the page is https.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${data.name}=${data.value}; Path=/; Max-Age=${data.max_age}; SameSite=Strict${secure}`;
}
"""


def accounts_on() -> bool:
    return os.environ.get(ACCOUNTS_ENV) == "1"


def _browser_actor() -> Actor | None:
    """Who acts in the browser session running this code: a demo link's visitor, the person signed in,
    this computer's own user (accounts off), or NOBODY (accounts on, outside any session or signed in)."""
    if get_script_run_ctx() is None:
        return NOBODY if accounts_on() else None
    demo = st.session_state.get("demo")
    if isinstance(demo, Share):
        return demo.actor()
    if not accounts_on():
        return None
    user = st.session_state.get("signed_in")
    return user.actor() if isinstance(user, User) else NOBODY


def ask_the_browser_who_acts() -> None:
    """From now on every engine call in this process asks the browser session who acts."""
    find_actor_with(_browser_actor)


# -- demo links ---------------------------------------------------------------------------


def find_demo_link() -> Share | None:
    """The demo link this browser session opened (``?share=...``), checked again on every run; None if it opened none.

    A session that opened a link stays a demo session: taking the parameter off the address shows
    nothing more. A link that has expired or was revoked stops the page with one sentence.
    """
    state = st.session_state
    token = st.query_params.get("share") or state.get("demo_token")
    if not token:
        return None
    state.demo_token = token
    demo = ShareStore().find_share(token)
    if demo is None:
        state.pop("demo", None)
        st.error("This demo link has expired or was revoked: ask whoever shared it for a new one.", icon=":material/link_off:")
        st.stop()
    state.demo = demo
    return demo


@st.cache_resource(show_spinner=False)
def _demo_rates() -> RateLimiter:
    return RateLimiter(DEMO_REQUESTS_PER_MINUTE)


def wait_for_demo_turn(demo: Share) -> float:
    """Count one prediction of a demo link: 0 if it may go ahead, else the seconds to wait (one limit per link)."""
    return _demo_rates().take(demo.id)


@st.cache_resource(show_spinner=False)
def _users() -> UserStore:
    return UserStore()


def _write_cookie(value: str, max_age: int) -> None:
    st.components.v2.component("conceptlab_session_cookie", js=_COOKIE_JS)(
        key=f"cookie_{value or 'cleared'}", data={"name": COOKIE, "value": value, "max_age": max_age}, height=0
    )


def _sign_in() -> None:
    state = st.session_state
    try:
        user = _users().sign_in(state.get("sign_in_name") or "", state.get("sign_in_password") or "")
    except SignInError as e:
        state.sign_in_error = sentence(e)
        return
    finally:
        state.sign_in_password = ""  # never kept past this callback
    state.pop("sign_in_error", None)
    state.signed_in = user
    state.session_token = _users().start_session(user)
    state.cookie_to_write = state.session_token


def _set_own_password() -> None:
    state = st.session_state
    first, second = state.get("new_password") or "", state.get("new_password_again") or ""
    state.new_password = state.new_password_again = ""
    if first != second:
        state.password_error = "The two passwords differ."
        return
    try:
        _users().set_password(state.signed_in.name, first)
    except ConceptlabError as e:
        state.password_error = sentence(e)
        return
    state.pop("password_error", None)
    state.signed_in = _users().get_user(state.signed_in.name)


def sign_out() -> None:
    state = st.session_state
    _users().end_session(state.pop("session_token", None))
    state.pop("signed_in", None)
    state.cookie_to_write = ""
    if single_sign_on() and st.user.is_logged_in:
        st.logout()  # the provider's identity cookie goes too


def single_sign_on() -> bool:
    """Whether an OpenID Connect provider is configured (an ``[auth]`` section in Streamlit's secrets)."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, StreamlitSecretNotFoundError):
        return False


def _provider_user() -> User | None:
    """The account of the person the OpenID provider signed in, made at their first sign-in; None if no one."""
    if not single_sign_on() or not st.user.is_logged_in:
        return None
    name = st.user.get("email") or st.user.get("sub")
    try:
        user = _users().find_or_add_provider_user(str(name or ""))
    except ConceptlabError as e:
        st.session_state.sign_in_error = sentence(e)
        return None
    if user.disabled:
        st.session_state.sign_in_error = f"The account {user.name} is disabled: ask an admin."
        return None
    return user


def find_signed_in() -> User | None:
    """The signed-in user of this browser session (through the identity provider, its session, or the browser's cookie), or None."""
    state, users = st.session_state, _users()
    if (user := _provider_user()) is not None:
        state.signed_in = user
        return user
    if "cookie_to_write" in state:  # after a sign-in or sign-out: the browser keeps (or drops) the session
        value = state.pop("cookie_to_write")
        _write_cookie(value, 7 * 24 * 3600 if value else 0)
    token = state.get("session_token") or st.context.cookies.get(COOKIE)
    user = users.find_session(token)
    if user is None:
        state.pop("signed_in", None)
        state.pop("session_token", None)
        return None
    state.signed_in, state.session_token = user, token
    return user


def stop_unless_ready(user: User | None) -> None:
    """Before anything of the studio shows: the sign-in form, or the new-password form after a one-time password."""
    if user is None:
        _render_sign_in()
        st.stop()
    if user.must_change:
        _render_new_password(user)
        st.stop()


def _render_sign_in() -> None:
    st.title("Sign in to conceptlab")
    if single_sign_on():
        st.button("Sign in with single sign-on", type="primary", icon=":material/login:", on_click=st.login)
        st.caption("Or with a conceptlab account:")
    with st.form("sign_in"):
        st.text_input("User name", key="sign_in_name", autocomplete="username")
        st.text_input("Password", key="sign_in_password", type="password", autocomplete="current-password")
        st.form_submit_button("Sign in", type="primary", on_click=_sign_in)
    if st.session_state.get("sign_in_error"):
        st.error(md(st.session_state.sign_in_error), icon=":material/lock:")


def _render_new_password(user: User) -> None:
    st.title("Choose your own password")
    st.caption(f"Signed in as {md(user.name)} with a one-time password: choose one of at least 10 characters to go on.")
    with st.form("own_password"):
        st.text_input("New password", key="new_password", type="password", autocomplete="new-password")
        st.text_input("The same again", key="new_password_again", type="password", autocomplete="new-password")
        st.form_submit_button("Set my password", type="primary", on_click=_set_own_password)
    if st.session_state.get("password_error"):
        st.error(md(st.session_state.password_error), icon=":material/error:")
