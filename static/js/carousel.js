// Banner carousel: fades between slides, with arrows, dots and autoplay paused on hover.
(function () {
  "use strict";
  document.querySelectorAll(".carousel").forEach(function (root) {
    var slides = root.querySelectorAll(".carousel-slide");
    var dots = root.querySelectorAll(".carousel-dot");
    if (slides.length < 2) return;
    var current = 0;
    var interval = parseInt(root.dataset.interval, 10) || 4000;
    var timer = null;

    function show(index) {
      current = (index + slides.length) % slides.length;
      slides.forEach(function (slide, i) { slide.classList.toggle("active", i === current); });
      dots.forEach(function (dot, i) { dot.classList.toggle("active", i === current); });
    }
    function start() { stop(); timer = setInterval(function () { show(current + 1); }, interval); }
    function stop() { if (timer) { clearInterval(timer); timer = null; } }

    root.querySelector(".carousel-prev").addEventListener("click", function () { show(current - 1); start(); });
    root.querySelector(".carousel-next").addEventListener("click", function () { show(current + 1); start(); });
    dots.forEach(function (dot) {
      dot.addEventListener("click", function () { show(parseInt(dot.dataset.index, 10)); start(); });
    });
    root.addEventListener("mouseenter", stop);
    root.addEventListener("mouseleave", start);
    start();
  });
})();
