// The Label page's picture grid: a click on a card selects it at once, in the browser, without a
// round trip to the server; only an action ("Is ant", "Remove label", "find similar") is sent.
// Everything a person named (file names, concepts) is set as text, never as HTML.

// Per project, the selection survives reruns, paging and filtering while the page stays open.
const memory = new Map();

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let mem = memory.get(data.scope);
  if (!mem) {
    mem = { picked: new Set(), cleared: data.cleared, anchor: null };
    memory.set(data.scope, mem);
  }
  if (mem.cleared !== data.cleared) {
    // The server stored the last action: start the next selection afresh.
    mem.picked.clear();
    mem.cleared = data.cleared;
  }
  let root = parentElement.querySelector(".cl-root");
  if (!root) root = parentElement.appendChild(el("div", "cl-root"));
  root.replaceChildren();

  const ids = data.items.map((item) => item.id);
  const bar = root.appendChild(el("div", "cl-bar"));
  const concept = data.concept;
  const actions = [
    ["yes", concept ? `Is ${concept}` : "Positive", "primary"],
    ["no", concept ? `Is not ${concept}` : "Negative", ""],
    ["clear", "Remove label", ""],
  ];
  const actionButtons = actions.map(([kind, text, style]) => {
    const button = bar.appendChild(el("button", `cl-btn ${style}`, text));
    button.onclick = () => setTriggerValue("action", { kind, ids: [...mem.picked] });
    return button;
  });
  const all = bar.appendChild(el("button", "cl-btn", "Select all on this page"));
  const none = bar.appendChild(el("button", "cl-btn", "Clear selection"));
  const count = bar.appendChild(el("span", "cl-count"));
  const cards = new Map();

  function refresh() {
    for (const [id, card] of cards) {
      const on = mem.picked.has(id);
      card.classList.toggle("picked", on);
      card.setAttribute("aria-checked", String(on));
      card.querySelector(".cl-tick").textContent = on ? "✓" : "";
    }
    const n = mem.picked.size;
    count.textContent = `${n} selected · ${data.summary}`;
    const why = !concept ? "Choose or type a concept above first" : n ? "" : "Click the pictures to select them first";
    for (const button of actionButtons) {
      button.disabled = Boolean(why);
      button.title = button.disabled ? why : "";
    }
    none.disabled = n === 0;
  }

  function toggle(id, range) {
    if (range && mem.anchor !== null && ids.includes(mem.anchor)) {
      // Shift-click: the whole run from the last card clicked takes that card's new state.
      const [a, b] = [ids.indexOf(mem.anchor), ids.indexOf(id)].sort((x, y) => x - y);
      const on = mem.picked.has(mem.anchor);
      for (const other of ids.slice(a, b + 1)) on ? mem.picked.add(other) : mem.picked.delete(other);
    } else {
      mem.picked.has(id) ? mem.picked.delete(id) : mem.picked.add(id);
      mem.anchor = id;
    }
    refresh();
  }

  all.onclick = () => {
    ids.forEach((id) => mem.picked.add(id));
    refresh();
  };
  none.onclick = () => {
    mem.picked.clear();
    refresh();
  };

  const grid = root.appendChild(el("div", "cl-grid"));
  if (!data.items.length) root.appendChild(el("div", "cl-empty", data.empty));
  for (const item of data.items) {
    const card = renderCard(item);
    card.tabIndex = 0;
    card.setAttribute("role", "checkbox");
    card.dataset.id = item.id;
    card.prepend(el("div", "cl-tick"));
    const similar = card.appendChild(el("button", "cl-similar", "Similar"));
    similar.title = "Find inputs like this one";
    similar.onclick = (event) => {
      event.stopPropagation();
      setTriggerValue("action", { kind: "similar", ids: [item.id] });
    };
    card.onclick = (event) => toggle(item.id, event.shiftKey);
    card.onkeydown = (event) => {
      if (event.key === " " || event.key === "Enter") {
        event.preventDefault();
        toggle(item.id, event.shiftKey);
      }
    };
    cards.set(item.id, card);
    grid.appendChild(card);
  }
  refresh();
}
