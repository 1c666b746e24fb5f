// The page of erlrestore-serve (erlrestore/serving/page.py says why it is a page of our own).
// Plain script, no build step, nothing from elsewhere. It speaks the server's REST API:
//   GET  /ui/config.json                         the served models and the server's limits
//   POST /v1/models/<name>[/versions/<v>]:predict  {"signature_name": "restore_bytes", "instances": [{"b64": file}]}
//   GET  /v1/progress/<request id>                how far that request has got (tiles done of all)
// <body data-state> is "loading", "ready", "busy", "done" or "error"; #message's data-kind names an error's kind
// ("not-image", "too-large", "unknown-model", "bad-request", "busy", "server", "network", "config").
"use strict";

(function () {
  const POLL_MS = 1000; // how often the progress of a running request is asked for (each poll is a logged request)
  const CONFIG_PATH = "/ui/config.json";
  // The signatures of the formats the server decodes (TensorFlow's decode_png / decode_image).
  const FORMATS = [
    { name: "PNG", test: (b) => starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
    { name: "JPEG", test: (b) => starts(b, [0xff, 0xd8, 0xff]) },
    { name: "GIF", test: (b) => starts(b, [0x47, 0x49, 0x46, 0x38]) },
    { name: "BMP", test: (b) => starts(b, [0x42, 0x4d]) },
    { name: "WebP", test: (b) => starts(b, [0x52, 0x49, 0x46, 0x46]) && starts(b.subarray(8), [0x57, 0x45, 0x42, 0x50]) },
  ];

  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $("model"), version: $("version"), again: $("again"), limits: $("limits"), drop: $("drop"), file: $("file"),
    message: $("message"), messageTitle: $("message-title"), messageDetail: $("message-detail"),
    progressBox: $("progress-box"), progress: $("progress"), progressText: $("progress-text"),
    inputImage: $("input-image"), inputInfo: $("input-info"), resultImage: $("result-image"),
    resultInfo: $("result-info"), download: $("download"),
  };

  let config = null; // the answer of CONFIG_PATH
  let photo = null; // {file, format, width, height, url} of the photo chosen
  let resultUrl = null;
  let busy = false;

  function starts(bytes, prefix) {
    return bytes.length >= prefix.length && prefix.every((value, i) => bytes[i] === value);
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  // ---------------------------------------------------------------- messages

  function showError(kind, title, detail) {
    ui.message.dataset.kind = kind;
    ui.messageTitle.textContent = title;
    ui.messageDetail.textContent = detail || "";
    ui.messageDetail.hidden = !detail;
    ui.message.hidden = false;
    setState("error");
  }

  function clearMessage() {
    ui.message.hidden = true;
    delete ui.message.dataset.kind;
  }

  function formatBytes(count) {
    if (count >= 1e9) return (count / 1e9).toFixed(2) + " GB";
    if (count >= 1e6) return (count / 1e6).toFixed(1) + " MB";
    if (count >= 1e3) return (count / 1e3).toFixed(0) + " kB";
    return count + " bytes";
  }

  function formatSeconds(seconds) {
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const minutes = Math.floor(seconds / 60);
    return minutes + " min " + Math.round(seconds - 60 * minutes) + " s";
  }

  function formatPixels(count) {
    return count >= 1e6 ? (count / 1e6).toFixed(count >= 1e7 ? 0 : 1) + " megapixels" : count + " pixels";
  }

  // The server's error text: {"error": ...} of erlrestore-serve and TF Serving, else the body as text.
  async function serverErrorText(response) {
    let text = "";
    try {
      text = await response.text();
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed.error === "string") return parsed.error;
    } catch (error) {
      // not JSON: the text itself
    }
    return text.trim() || response.status + " " + response.statusText;
  }

  function showServerError(status, text, model) {
    const said = "The server said: " + text;
    if (status === 404 && /model .* (is not served here|has no version)/.test(text)) {
      showError("unknown-model", "Model \u201c" + model + "\u201d is not served here", said +
        "\nReload the page to see the models the server serves now.");
    } else if (status === 413) {
      showError("too-large", "The photo is too large for this server", said);
    } else if (status === 400 && /max_image_pixels/.test(text)) {
      showError("too-large", "The photo has too many pixels for this server", said);
    } else if (status === 400 && /rejected the input|decode|image format/i.test(text)) {
      showError("not-image", "The server could not read this file as an image", said);
    } else if (status === 400 || status === 408 || status === 411) {
      showError("bad-request", "The server refused the request (HTTP " + status + ")", said);
    } else if (status === 503) {
      showError("busy", "The server is busy: try again in a moment", said);
    } else if (status >= 500) {
      showError("server", "Server error (HTTP " + status + ")", said);
    } else {
      showError("server", "The request failed (HTTP " + status + ")", said);
    }
  }

  // ---------------------------------------------------------------- models

  async function loadConfig() {
    let response;
    try {
      response = await fetch(CONFIG_PATH, { cache: "no-store" });
    } catch (error) {
      showError("network", "Could not reach the server", String(error));
      return;
    }
    if (!response.ok) {
      showError("config", "The server did not list its models (HTTP " + response.status + ")",
        "The server said: " + await serverErrorText(response));
      return;
    }
    config = await response.json();
    const wanted = new URLSearchParams(window.location.search).get("model");
    ui.model.textContent = "";
    for (const model of config.models) {
      const option = new Option(model.name, model.name);
      if (!model.restores_files) {
        option.disabled = true;
        option.textContent += " (no " + config.signature_name + " signature)";
      }
      ui.model.add(option);
    }
    const usable = config.models.filter((model) => model.restores_files);
    const chosen = usable.find((model) => model.name === wanted) || usable[0];
    if (chosen) ui.model.value = chosen.name;
    ui.model.disabled = !chosen;
    fillVersions();
    const limits = [];
    if (config.max_request_bytes) {
      limits.push("files up to about " + formatBytes(Math.floor((config.max_request_bytes - 100) * 3 / 4)));
    }
    if (config.max_image_pixels) limits.push(formatPixels(config.max_image_pixels));
    if (config.tile) limits.push("tiles of " + config.tile + " px");
    ui.limits.textContent = limits.length ? "This server: " + limits.join(", ") + "." : "";
    if (!chosen) {
      showError("config", "No model here can restore a photo",
        "The page sends files to the " + config.signature_name + " signature, which none of the served models " +
        "has (" + (config.models.map((model) => model.name).join(", ") || "no models") + ").");
      return;
    }
    setState("ready");
  }

  function selectedModel() {
    return config ? config.models.find((model) => model.name === ui.model.value) : null;
  }

  function fillVersions() {
    const model = selectedModel();
    ui.version.textContent = "";
    if (!model) {
      ui.version.disabled = true;
      return;
    }
    ui.version.add(new Option("latest (" + model.default_version + ")", ""));
    for (const entry of model.versions) {
      const option = new Option(entry.version, entry.version);
      option.disabled = !entry.restores_files;
      ui.version.add(option);
    }
    ui.version.disabled = false;
  }

  // ---------------------------------------------------------------- the photo

  function imageSize(url) {
    return new Promise((resolve) => {
      const image = new Image();
      image.onload = () => resolve({ width: image.naturalWidth, height: image.naturalHeight });
      image.onerror = () => resolve(null); // the browser cannot show it; the server may still read it
      image.src = url;
    });
  }

  function stem(name) {
    const base = name.replace(/^.*[\\/]/, "");
    const dot = base.lastIndexOf(".");
    return (dot > 0 ? base.slice(0, dot) : base) || "photo";
  }

  function clearResult() {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = null;
    ui.resultImage.hidden = true;
    ui.resultImage.removeAttribute("src");
    ui.resultInfo.textContent = "";
    ui.download.hidden = true;
    ui.download.setAttribute("href", "#");
  }

  async function takeFile(file) {
    if (!file || busy) return;
    clearMessage();
    clearResult();
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    const format = FORMATS.find((candidate) => candidate.test(head));
    if (!format) {
      const what = file.size === 0 ? "it is empty" : (file.type ? "its type is " + file.type : "its first bytes are " +
        "no image format's signature");
      showError("not-image", "\u201c" + file.name + "\u201d is not an image",
        "The server restores PNG, JPEG, GIF, BMP and WebP files; " + what + ". Choose a photo.");
      ui.again.disabled = !photo;
      return;
    }
    if (photo) URL.revokeObjectURL(photo.url);
    photo = { file: file, format: format.name, url: URL.createObjectURL(file), width: null, height: null };
    ui.inputImage.src = photo.url;
    ui.inputImage.hidden = false;
    const size = await imageSize(photo.url);
    if (size) {
      photo.width = size.width;
      photo.height = size.height;
    }
    ui.inputInfo.textContent = (size ? size.width + " \u00d7 " + size.height + ", " : "") + format.name + ", " +
      formatBytes(file.size);
    await restore();
  }

  function newRequestId() {
    // crypto.randomUUID needs a secure context; getRandomValues works on plain http from another machine too.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return "page-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // ---------------------------------------------------------------- progress

  function showProgress(snapshot) {
    if (snapshot.state === "running" && snapshot.tiles_total) {
      ui.progress.max = snapshot.tiles_total;
      ui.progress.value = snapshot.tiles_done;
      let text = (snapshot.tiles_total === 1 ? "Restoring" : "Tile " + snapshot.tiles_done + " of " +
        snapshot.tiles_total);
      if (snapshot.eta_seconds !== null && snapshot.eta_seconds !== undefined) {
        text += ", about " + formatSeconds(snapshot.eta_seconds) + " left";
      }
      ui.progressText.textContent = text;
    } else if (snapshot.state === "waiting") {
      ui.progress.removeAttribute("value"); // indeterminate
      ui.progressText.textContent = "Waiting for a turn on the server\u2026";
    }
  }

  // Polls the progress endpoint until stop(); answers other than 200 (404 before the request arrives, or a server
  // without the endpoint) leave the bar indeterminate.
  function pollProgress(requestId) {
    let stopped = false;
    let timer = null;
    async function poll() {
      try {
        const response = await fetch(config.progress_path + encodeURIComponent(requestId), { cache: "no-store" });
        if (response.ok && !stopped) showProgress(await response.json());
      } catch (error) {
        // a missed poll is no failure: the next one comes
      }
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    }
    if (config.progress_path) timer = setTimeout(poll, POLL_MS / 2);
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
      async last() { // the final snapshot (the server keeps it for minutes), or null
        if (!config.progress_path) return null;
        try {
          const response = await fetch(config.progress_path + encodeURIComponent(requestId), { cache: "no-store" });
          return response.ok ? await response.json() : null;
        } catch (error) {
          return null;
        }
      },
    };
  }

  // ---------------------------------------------------------------- restoring

  async function restore() {
    if (!photo || busy || !config) return;
    const model = ui.model.value;
    const version = ui.version.value;
    clearMessage();
    clearResult();
    if (config.max_image_pixels && photo.width && photo.width * photo.height > config.max_image_pixels) {
      showError("too-large", "The photo has too many pixels for this server",
        photo.file.name + " is " + photo.width + " \u00d7 " + photo.height + " = " +
        formatPixels(photo.width * photo.height) + "; this server restores at most " +
        formatPixels(config.max_image_pixels) + " (erlrestore-serve --max_image_pixels).");
      return;
    }
    busy = true;
    setState("busy");
    ui.again.disabled = true;
    ui.model.disabled = ui.version.disabled = true;
    ui.progressBox.hidden = false;
    ui.progress.removeAttribute("value");
    ui.progressText.textContent = "Sending " + formatBytes(photo.file.size) + "\u2026";
    let poller = null;
    try {
      const body = '{"signature_name":"' + config.signature_name + '","instances":[{"b64":"' +
        await readBase64(photo.file) + '"}]}';
      if (config.max_request_bytes && body.length > config.max_request_bytes) {
        showError("too-large", "The photo is too large for this server",
          photo.file.name + " is " + formatBytes(photo.file.size) + "; sent as base64 in JSON it makes a request of " +
          formatBytes(body.length) + ", more than the " + formatBytes(config.max_request_bytes) +
          " this server takes (erlrestore-serve --max_request_bytes). Choose a smaller file.");
        return;
      }
      const path = "/v1/models/" + encodeURIComponent(model) +
        (version ? "/versions/" + encodeURIComponent(version) : "") + ":predict";
      const requestId = newRequestId();
      const headers = { "Content-Type": "application/json" };
      headers[config.request_id_header] = requestId;
      poller = pollProgress(requestId);
      const started = performance.now();
      let response;
      try {
        response = await fetch(path, { method: "POST", headers: headers, body: body });
      } catch (error) {
        showError("network", "Could not reach the server", String(error) +
          "\nIs erlrestore-serve still running? The photo may also have been larger than the server accepts.");
        return;
      }
      if (!response.ok) {
        poller.stop();
        showServerError(response.status, await serverErrorText(response), model);
        return;
      }
      const answer = await response.json();
      poller.stop();
      const seconds = (performance.now() - started) / 1000;
      const prediction = answer.predictions && answer.predictions[0];
      const encoded = prediction && (prediction.b64 || (prediction[config.output_key] || {}).b64);
      if (!encoded) {
        showError("server", "The server's answer holds no image", JSON.stringify(answer).slice(0, 300));
        return;
      }
      resultUrl = URL.createObjectURL(new Blob([base64Bytes(encoded)], { type: "image/png" }));
      ui.resultImage.src = resultUrl;
      ui.resultImage.hidden = false;
      ui.download.href = resultUrl;
      ui.download.download = stem(photo.file.name) + "-restored.png";
      ui.download.hidden = false;
      const final = await poller.last();
      const served = final && final.version ? model + " version " + final.version : model;
      const tiles = final && final.tiles_total > 1 ? ", " + final.tiles_total + " tiles" : "";
      ui.resultInfo.textContent = served + ", " + formatSeconds(seconds) + tiles;
      ui.progress.max = 1;
      ui.progress.value = 1;
      ui.progressText.textContent = "Done in " + formatSeconds(seconds) + tiles;
      setState("done");
    } catch (error) {
      showError("server", "Something went wrong on this page", String(error));
    } finally {
      if (poller) poller.stop();
      busy = false;
      ui.again.disabled = !photo;
      ui.model.disabled = !config.models.some((entry) => entry.restores_files);
      ui.version.disabled = !selectedModel();
      if (document.body.dataset.state === "error") ui.progressBox.hidden = true;
    }
  }

  // ---------------------------------------------------------------- wiring

  ui.model.addEventListener("change", fillVersions);
  ui.again.addEventListener("click", restore);
  ui.file.addEventListener("change", () => {
    const file = ui.file.files[0];
    ui.file.value = ""; // choosing the same file again fires "change" again
    takeFile(file);
  });
  for (const name of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(name, (event) => {
      event.preventDefault();
      ui.drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    ui.drop.addEventListener(name, () => ui.drop.classList.remove("over"));
  }
  ui.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) takeFile(files[0]);
  });
  // A photo dropped beside the drop zone would make the browser leave the page to show it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  loadConfig();
})();
