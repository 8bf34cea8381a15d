// The Label page's one-at-a-time view. The server sends the next few inputs; the person answers
// with a click or a key (1-9 a concept, N none of these, Enter done, arrows back and skip) and the
// next input shows at once. Answers go to the server as a numbered log of everything it has not
// stored yet, so an answer whose update was merged into a later one still arrives, in order.

const memory = new Map();
let keyHandler = null;

function isTyping(target) {
  const tag = (target && target.tagName) || "";
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let mem = memory.get(data.scope);
  if (!mem) {
    mem = { log: [], seq: data.stored_seq, done: new Set(), skipped: new Set(data.skipped), history: [], back: null, toggled: new Set() };
    memory.set(data.scope, mem);
  }
  mem.seq = Math.max(mem.seq, data.stored_seq);
  mem.log = mem.log.filter((entry) => entry.seq > data.stored_seq);
  if (data.restart !== mem.restart) {
    // The filters changed or the skipped ones were put back: what the server sends now is the queue.
    mem.restart = data.restart;
    mem.skipped = new Set(data.skipped);
    for (const id of [...mem.done]) if (!mem.log.some((entry) => entry.id === id)) mem.done.delete(id);
    mem.back = null;
  }
  let root = parentElement.querySelector(".cl-root");
  if (!root) root = parentElement.appendChild(el("div", "cl-root"));

  const concepts = data.concepts;
  const send = () => setStateValue("progress", { answers: mem.log.slice(), skipped: [...mem.skipped] });

  function current() {
    if (mem.back !== null) return mem.history[mem.back];
    const item = data.queue.find((candidate) => !mem.done.has(candidate.id));
    return item ? { item, entry: null } : null;
  }

  function moveOn(step) {
    mem.toggled.clear();
    if (mem.back !== null) {
      mem.back += step;
      if (mem.back >= mem.history.length) mem.back = null;
    }
    draw();
  }

  function answer(shows) {
    const view = current();
    if (!view) return;
    const shown = new Set(shows);
    const entry = {
      seq: ++mem.seq,
      id: view.item.id,
      shows,
      // One concept per input: a "yes" needs no "no"s; otherwise the answer covers every concept.
      shows_not: data.exclusive && shows.length ? [] : concepts.filter((c) => !shown.has(c)),
    };
    mem.log.push(entry);
    mem.done.add(view.item.id);
    mem.skipped.delete(view.item.id);
    if (mem.back !== null) mem.history[mem.back] = { item: view.item, entry };
    else mem.history.push({ item: view.item, entry });
    send();
    moveOn(1);
  }

  function skip() {
    const view = current();
    if (!view) return;
    if (mem.back !== null) return moveOn(1);
    mem.done.add(view.item.id);
    mem.skipped.add(view.item.id);
    mem.history.push({ item: view.item, entry: null });
    send();
    moveOn(1);
  }

  function goBack() {
    if (!mem.history.length || mem.back === 0) return;
    mem.back = mem.back === null ? mem.history.length - 1 : mem.back - 1;
    mem.toggled.clear();
    draw();
  }

  function press(index) {
    const concept = concepts[index];
    if (concept === undefined) return;
    if (data.exclusive) return answer([concept]);
    mem.toggled.has(concept) ? mem.toggled.delete(concept) : mem.toggled.add(concept);
    draw();
  }

  function button(parent, key, text, style, onclick) {
    const node = parent.appendChild(el("button", `cl-btn ${style}`));
    if (key) node.appendChild(el("kbd", "", key));
    node.appendChild(document.createTextNode(text));
    node.onclick = onclick;
    return node;
  }

  function draw() {
    root.replaceChildren();
    const view = current();
    const waiting = mem.log.length + [...mem.skipped].filter((id) => !data.skipped.includes(id)).length;
    if (!view) {
      const box = root.appendChild(el("div", "cl-done"));
      const more = data.left > data.queue.length;
      box.appendChild(el("div", "", more ? "Loading the next ones…" : data.done_text));
      if (mem.history.length) button(box, "←", "Back to the last one", "", goBack);
      return;
    }
    const { item, entry } = view;
    const left = Math.max(1, data.left - waiting);
    const status = mem.back !== null ? "Going back: answer again to change it, or → to move on." : `${left} to go.`;
    root.appendChild(el("div", "cl-hint", status));
    const layout = root.appendChild(el("div", "cl-one"));
    const card = layout.appendChild(renderCard(item));
    card.style.height = "auto";
    card.style.cursor = "default";
    const side = layout.appendChild(el("div", "cl-answers"));
    if (!concepts.length) side.appendChild(el("div", "cl-hint", data.no_concepts));
    const previous = entry ? new Set(entry.shows) : new Set();
    side.appendChild(el("h4", "", data.exclusive ? "It is…" : "It shows… (pick all that apply)"));
    concepts.forEach((concept, i) => {
      // One concept per input: each button answers, so all are primary. Otherwise they toggle: filled with a tick when on.
      const on = data.exclusive ? previous.has(concept) : mem.toggled.has(concept);
      const style = on ? "on" : data.exclusive ? "primary" : "";
      const text = on ? `✓ ${concept}` : concept;
      button(side, i < 9 ? String(i + 1) : "", text, style, () => press(i)).setAttribute("aria-pressed", String(on));
    });
    if (!data.exclusive && concepts.length) {
      const done = mem.toggled.size ? `Done: ${[...mem.toggled].join(", ")}` : "Done: none of these";
      button(side, "Enter", done, mem.toggled.size ? "primary" : "", () => answer([...mem.toggled]));
    }
    const none = button(side, "N", "None of these", entry && !entry.shows.length ? "on" : "", () => answer([]));
    none.disabled = !concepts.length;
    const moves = side.appendChild(el("div", "cl-bar"));
    button(moves, "←", "Back", "", goBack).disabled = !mem.history.length || mem.back === 0;
    button(moves, "→", mem.back !== null ? "Forward" : "Skip", "", skip);
    side.appendChild(el("div", "cl-hint", "Keys: " + (concepts.length ? `1-${Math.min(9, concepts.length)} ` : "") + "N none · ← back · → skip"));
  }

  // One listener on the page at a time; each render's cleanup removes its own, never a newer one.
  // Listened to while the event descends, so a focused button or tab bar cannot take the arrows first.
  if (keyHandler) document.removeEventListener("keydown", keyHandler, true);
  const onKey = (event) => {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key >= "1" && key <= "9") press(Number(key) - 1);
    else if (key === "n" || key === "N") answer([]);
    else if (key === "Enter" && !data.exclusive) answer([...mem.toggled]);
    else if (key === "ArrowRight") skip();
    else if (key === "ArrowLeft") goBack();
    else return;
    event.preventDefault();
    event.stopPropagation();
  };
  keyHandler = onKey;
  document.addEventListener("keydown", onKey, true);
  draw();
  return () => {
    document.removeEventListener("keydown", onKey, true);
    if (keyHandler === onKey) keyHandler = null;
  };
}
