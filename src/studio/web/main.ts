// The studio page: four views over one live job list fed by server-sent events.
document.getElementById("live")!.textContent = "…";
