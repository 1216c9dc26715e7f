// Progressive enhancement only: without JavaScript every field is simply visible.
document.querySelectorAll("[data-reveal-when]").forEach(function (block) {
  var toggle = document.getElementById(block.getAttribute("data-reveal-when"));
  if (!toggle) return;
  function sync() { block.hidden = !toggle.checked; }
  toggle.addEventListener("change", sync);
  sync();
});

// A block shown for one value of a select: data-reveal-value="<select id>=<value>".
document.querySelectorAll("[data-reveal-value]").forEach(function (block) {
  var parts = block.getAttribute("data-reveal-value").split("=");
  var select = document.getElementById(parts[0]);
  if (!select) return;
  function sync() { block.hidden = select.value !== parts[1]; }
  select.addEventListener("change", sync);
  sync();
});

// Copy buttons: the text of the element named by data-copy goes to the clipboard.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Скопировано";
    });
  });
});

// Rotating the secret breaks the telephony app until it gets the new one: ask first.
document.querySelectorAll("form[data-megaplan-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-megaplan-confirm"))) event.preventDefault();
  });
});
