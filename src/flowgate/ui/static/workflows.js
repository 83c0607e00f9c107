// "Copy" buttons of the workflow page: <button data-copy="ID"> copies the text of element ID.
// Where the clipboard API is unavailable (a plain-http origin other than localhost), the text
// is selected instead, so that Ctrl+C copies it.
"use strict";

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function flash(button, text) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = text;
  window.setTimeout(() => { button.textContent = label; }, 1500);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent;
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(
      () => flash(button, "Copied"),
      () => { selectText(source); flash(button, "Press Ctrl+C"); },
    );
  } else {
    selectText(source);
    flash(button, "Press Ctrl+C");
  }
});
