console.log("p2pdm");
