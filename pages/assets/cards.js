// What the picture grid and the one-at-a-time view share (put before each one's own code).

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderCard(item) {
  const card = el("div", "cl-card");
  const media = el("div", "cl-media");
  if (item.image) {
    const img = el("img");
    img.src = item.image;
    img.alt = item.name;
    media.appendChild(img);
  } else {
    media.appendChild(el("div", "cl-text", item.text ?? "no preview"));
  }
  card.appendChild(media);
  card.appendChild(el("div", "cl-name", item.name)).title = item.name;
  if (item.caption) card.appendChild(el("div", "cl-note", item.caption));
  if (item.badges && item.badges.length) {
    const badges = el("div", "cl-badges");
    for (const [text, tone] of item.badges) badges.appendChild(el("span", `cl-badge ${tone}`, text)).title = text;
    card.appendChild(badges);
  }
  if (item.note) card.appendChild(el("div", "cl-note", item.note));
  return card;
}

