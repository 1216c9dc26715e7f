// Progressive enhancement only: without JavaScript every field is simply visible.
document.querySelectorAll("[data-reveal-when]").forEach(function (block) {
  var toggle = document.getElementById(block.getAttribute("data-reveal-when"));
  if (!toggle) return;
  function sync() { block.hidden = !toggle.checked; }
  toggle.addEventListener("change", sync);
  sync();
});
