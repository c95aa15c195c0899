"""The BPTT explorer in a real browser: headless Chromium loads the page, presses keys, and the DOM is read back."""
import contextlib
import json
import re

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import viz
from tinygrad_seq.viz import browser, demo
from tinygrad_seq.viz.explore import _dense

try:
    browser.find_chromium()
    MISSING = None
except browser.BrowserNotFound as error:
    MISSING = str(error)

pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no browser for the explorer tests: {MISSING}")


@pytest.fixture(scope="module")
def chromium():
    driver = browser.open_chromium(1400, 900)
    yield driver
    driver.quit()


def build(cell="rnn", steps=3, fused=False):
    model = demo.small_model(cell, steps=steps)
    with contextlib.nullcontext() if fused else ts.transparent():
        return model, model.loss()


@pytest.fixture(scope="module")
def rnn_page(tmp_path_factory):
    """The 3-step RNN of docs/bptt.md, and the library's own steps for an identical model."""
    model, loss = build()
    explorer = viz.explore(loss, tmp_path_factory.mktemp("explorer") / "rnn.html", params=model.parameters())
    twin, twin_loss = build()
    steps = list(viz.backward_steps(twin_loss, params=twin.parameters()))
    return explorer, steps, twin.parameters()


def open_page(driver, explorer, fragment=""):
    driver.get("about:blank")  # a new document: the fragment is read on load
    driver.get(explorer.path.as_uri() + fragment)
    driver.find_element("id", "step")


def text(driver, element_id):
    return driver.find_element("id", element_id).text


def current_keys(driver):
    """The graph keys of the nodes lit as current (the page keeps each SVG node's DOT id as data-key)."""
    return [e.get_attribute("data-key") for e in driver.find_elements("css selector", "#graph g.current")]


def press(driver, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def drawn(explorer, index):
    """The SVG node ids the page lights up at backward step ``index`` (from 0)."""
    data = json.loads(re.search(r"window\.EXPLORER_DATA = (.*?);</script>", explorer.page, re.S).group(1).replace("<\\/", "</"))
    return data["backward"][index]["drawn"]


def test_the_page_opens_at_the_addressed_step_and_shows_the_librarys_gradient(chromium, rnn_page, tmp_path):
    explorer, steps, _ = rnn_page
    open_page(chromium, explorer, "#step=16")
    step = steps[15]
    assert text(chromium, "step") == f"16 / {len(steps)}" == "16 / 24"
    assert text(chromium, "node") == step.name == "a⟨2⟩"
    assert text(chromium, "grad-title") == "∂L/∂a⟨2⟩ arriving (complete)"
    assert current_keys(chromium) == drawn(explorer, 15) and len(drawn(explorer, 15)) == 1
    grad = chromium.find_element("id", "grad")
    assert np.array_equal(np.array(json.loads(grad.get_attribute("data-values"))), step.grad)  # exactly
    shown = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", grad.text)]
    np.testing.assert_allclose(shown, step.grad.ravel(), rtol=1e-3)  # as printed, to 4 digits
    terms = chromium.find_elements("css selector", "#sum .term b")
    assert [t.text.strip(" +:") for t in terms] == ["from ŷ⟨2⟩", "from W_aa a⟨2⟩ at t = 3"]
    last_touch = {}
    for index in range(24):
        for node in drawn(explorer, index):
            last_touch[node] = index
    done = {e.get_attribute("data-key") for e in chromium.find_elements("css selector", "#graph g.node.done")}
    assert done == {node for node, last in last_touch.items() if last < 15}  # every node whose steps are all past
    assert len(done) == 14  # the 15 steps before, less the Stack, which is not drawn (its steps' a⟨t⟩ show it)
    chromium.save_screenshot(str(tmp_path / "step16.png"))
    assert not console_errors(chromium)


def test_the_heading_brackets_a_name_with_operators_as_the_rules_do(chromium, rnn_page):
    """It read "∂L/∂W_aa a⟨1⟩ arriving", which is (∂L/∂W_aa) a⟨1⟩, where the rules below wrote ∂L/∂(W_aa a⟨1⟩)."""
    explorer, _, _ = rnn_page
    records = json.loads(re.search(r"window\.EXPLORER_DATA = (.*?);</script>", explorer.page, re.S).group(1).replace("<\\/", "</"))["backward"]
    index = next(i for i, record in enumerate(records) if record["name"].startswith("W_aa a⟨"))
    open_page(chromium, explorer, f"#step={index + 1}")
    assert text(chromium, "grad-title") == f"∂L/∂({records[index]['name']}) arriving (complete)"


def test_keys_buttons_and_the_slider_move_through_the_steps(chromium, rnn_page, tmp_path):
    explorer, steps, _ = rnn_page
    open_page(chromium, explorer)
    assert text(chromium, "step") == "1 / 24" and text(chromium, "node") == "L"
    press(chromium, "\ue014")  # ArrowRight
    press(chromium, "\ue014")
    assert text(chromium, "step") == "3 / 24" and current_keys(chromium) == drawn(explorer, 2)
    assert chromium.execute_script("return location.hash") == "#step=3"
    press(chromium, "\ue012")  # ArrowLeft
    assert text(chromium, "step") == "2 / 24"
    press(chromium, "\ue010")  # End
    assert text(chromium, "step") == "24 / 24" and text(chromium, "node") == steps[-1].name
    press(chromium, "\ue011")  # Home
    assert text(chromium, "step") == "1 / 24"
    chromium.find_element("id", "next").click()
    assert text(chromium, "step") == "2 / 24"
    chromium.execute_script("const s = document.getElementById('slider'); s.value = 19;"
                            "s.dispatchEvent(new Event('input'));")
    assert text(chromium, "step") == "19 / 24" and text(chromium, "node") == steps[18].name == "a⟨1⟩"
    chromium.execute_script("location.hash = '#step=13'")  # an address typed or linked while open
    assert text(chromium, "step") == "13 / 24" and text(chromium, "node") == "a⟨3⟩"
    chromium.save_screenshot(str(tmp_path / "moved.png"))
    assert not console_errors(chromium)


def test_play_runs_the_steps_and_pause_stops_them(chromium, rnn_page):
    from selenium.webdriver.support.ui import WebDriverWait

    explorer, _, _ = rnn_page
    open_page(chromium, explorer, "#step=22")
    chromium.find_element("id", "play").click()
    WebDriverWait(chromium, 10).until(lambda d: text(d, "step") == "24 / 24")  # plays to the end, then stops
    assert text(chromium, "play") == "play"
    chromium.find_element("id", "play").click()  # from the end, play starts over
    WebDriverWait(chromium, 10).until(lambda d: text(d, "step") != "1 / 24")
    chromium.find_element("id", "play").click()
    paused = text(chromium, "step")
    chromium.execute_script("return new Promise(done => setTimeout(done, 1000))")  # longer than a step of play (700 ms)
    assert text(chromium, "step") == paused


def test_the_shared_weight_and_the_chart_fill_in_as_backward_goes(chromium, rnn_page):
    explorer, steps, twin_params = rnn_page
    open_page(chromium, explorer, "#step=18")  # W_aa a⟨1⟩: the second contribution to ∂L/∂W_aa
    w_aa = next(b for b in chromium.find_elements("css selector", ".param") if "rnn.weight_hh_l0" in b.text)
    assert len(w_aa.find_elements("css selector", "li")) == 2
    assert len(w_aa.find_elements("css selector", "li.new")) == 1
    running = np.array(json.loads(w_aa.find_element("css selector", "pre.running").get_attribute("data-values")))
    np.testing.assert_allclose(running, sent_to(steps, twin_params["rnn.weight_hh_l0"], upto=17), rtol=1e-6)  # float32 sums
    bars = chromium.find_elements("css selector", "#chart rect.bar.reached")
    assert sorted(int(b.get_attribute("data-t")) for b in bars) == [2, 3]  # a⟨3⟩ and a⟨2⟩ done, a⟨1⟩ not yet
    open_page(chromium, explorer, "#step=24")
    assert len(chromium.find_elements("css selector", "#chart rect.bar.reached")) == 3


def sent_to(steps, weight, upto):
    """The sum of what steps 0 … upto sent to ``weight``: its gradient so far, computed from the library's steps."""
    total = np.zeros(weight.shape)
    for step in steps[: upto + 1]:
        for arg, grad in step.input_grads:
            if arg is weight:
                total += _dense(grad, weight.shape)
    return total


def test_forward_mode_steps_through_the_values(chromium, rnn_page):
    explorer, _, _ = rnn_page
    open_page(chromium, explorer, "#mode=forward&step=1")
    model, loss = build()
    graph = viz.trace(loss)
    ops = [n for n in graph.nodes.values() if n.kind == "op"]
    assert text(chromium, "step") == f"1 / {len(ops)}"
    value = np.array(json.loads(chromium.find_element("id", "value").get_attribute("data-values")))
    np.testing.assert_array_equal(value, ops[0].tensor.numpy())
    chromium.find_element("id", "mode-backward").click()
    assert text(chromium, "step") == "1 / 24"
    chromium.find_element("id", "mode-forward").click()
    press(chromium, "\ue010")  # End: the loss comes last going forward
    assert text(chromium, "node") == "L"
    assert not console_errors(chromium)


def test_a_fifty_step_lstm_stays_usable(chromium, tmp_path):
    model, loss = build("lstm", steps=50)
    with pytest.warns(viz.CollapsedWarning, match="50 time steps"):  # collapsed by size, as the user is told
        explorer = viz.explore(loss, tmp_path / "long.html", params=model.parameters())
    assert explorer.collapsed
    open_page(chromium, explorer, "#step=300")
    assert text(chromium, "step") == f"300 / {explorer.steps}"
    assert len(current_keys(chromium)) == 1  # the step's box
    press(chromium, "\ue010")
    assert text(chromium, "step") == f"{explorer.steps} / {explorer.steps}"
    chromium.save_screenshot(str(tmp_path / "long.png"))
    assert not console_errors(chromium)


def test_every_step_of_other_pages_paints_without_a_console_error(chromium, tmp_path):
    """A deep bidirectional fused GRU (one node per step), and a scalar parameter with an op that sends nothing."""
    model = demo.small_model("gru", steps=3, layers=2, bidirectional=True)
    deep = viz.explore(model.loss(), tmp_path / "deep.html", params=model.parameters())
    scale = ts.Tensor(2.0, requires_grad=True, name="s")
    x = ts.randn(3, 2, name="x")
    scalar = viz.explore((x * scale).tanh().sum(), tmp_path / "scalar.html", params={"s": scale})
    for explorer in (deep, scalar):
        open_page(chromium, explorer)
        for index in range(1, explorer.steps + 1):
            assert text(chromium, "step") == f"{index} / {explorer.steps}"
            assert current_keys(chromium)  # something is lit at every step
            press(chromium, "\ue014")
        chromium.find_element("id", "mode-forward").click()
        press(chromium, "\ue010")
        assert not console_errors(chromium), explorer.path.name
    open_page(chromium, scalar, f"#step={scalar.steps}")
    s_block = chromium.find_element("css selector", ".param")
    assert "+ " in s_block.text and np.array(json.loads(s_block.find_element("css selector", "pre.running").get_attribute("data-values"))) == scale.grad


def test_fit_shows_the_whole_graph_and_a_click_on_a_node_goes_to_its_step(chromium, tmp_path):
    model, loss = build("lstm", steps=3)
    explorer = viz.explore(loss, tmp_path / "lstm.html", params=model.parameters())
    open_page(chromium, explorer)
    pane = chromium.find_element("id", "graph")
    svg = chromium.find_element("css selector", "#graph svg")
    assert svg.rect["width"] > pane.rect["width"]  # opens at a legible size, wider than the pane
    chromium.find_element("id", "zoom-fit").click()
    assert svg.rect["width"] <= pane.rect["width"] and svg.rect["height"] <= pane.rect["height"]
    # hovering shows what a node is, not its DOT id; the id stays as data-key
    nodes = chromium.find_elements("css selector", "#graph g.node")
    tips = {node.get_attribute("data-key"): node.find_element("css selector", "title").get_attribute("textContent") for node in nodes}
    assert not any(re.fullmatch(r"n\d+", tip.split("\n")[0]) for tip in tips.values())
    forget_gate = next(key for key, tip in tips.items() if tip.startswith("Γf⟨2⟩ · Sigmoid"))
    assert tips[forget_gate].endswith("click: go to its step")
    edge_tips = [e.get_attribute("textContent") for e in chromium.find_elements("css selector", "#graph g.edge > title")]
    assert "Γf⟨2⟩ → Mul" in edge_tips
    chromium.find_element("css selector", f'#graph g.node[data-key="{forget_gate}"]').click()
    index = next(i for i in range(explorer.steps) if forget_gate in drawn(explorer, i))  # its backward step
    assert text(chromium, "step") == f"{index + 1} / {explorer.steps}" and text(chromium, "node") == "Γf⟨2⟩"
    assert current_keys(chromium) == [forget_gate]
    assert svg.rect["width"] > pane.rect["width"]  # back to a legible size, around the node
    node = chromium.find_element("css selector", f'#graph g.node[data-key="{forget_gate}"]').rect
    assert pane.rect["x"] <= node["x"] and node["x"] + node["width"] <= pane.rect["x"] + pane.rect["width"]
    chromium.find_element("id", "mode-forward").click()  # going forward, the same click goes to its forward step
    chromium.find_element("css selector", f'#graph g.node[data-key="{forget_gate}"]').click()
    assert text(chromium, "node") == "Γf⟨2⟩" and chromium.execute_script("return location.hash").startswith("#mode=forward&")
    assert not console_errors(chromium)


def test_the_charts_title_names_the_parts_it_draws(chromium, rnn_page, tmp_path):
    explorer, _, _ = rnn_page
    open_page(chromium, explorer)
    assert text(chromium, "chart-title").startswith("‖∂L/∂a⟨t⟩‖ per time step")
    model, loss = build("lstm", steps=2)
    lstm = viz.explore(loss, tmp_path / "lstm.html", params=model.parameters())
    open_page(chromium, lstm)
    assert text(chromium, "chart-title").startswith("‖∂L/∂a⟨t⟩‖, ‖∂L/∂c⟨t⟩‖ per time step")


def test_modified_arrow_keys_are_left_to_the_browser(chromium, rnn_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    explorer, _, _ = rnn_page
    open_page(chromium, explorer, "#step=5")
    ActionChains(chromium).key_down(Keys.ALT).send_keys(Keys.ARROW_RIGHT).key_up(Keys.ALT).perform()
    assert text(chromium, "step") == "5 / 24"


def test_screenshot_writes_a_png(rnn_page, tmp_path):
    explorer, _, _ = rnn_page
    png = explorer.screenshot(tmp_path / "shot.png", step=16)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match=r"screenshot: no page at '.*' \(a folder\); give the HTML file viz.explore wrote"):
        browser.screenshot(tmp_path, tmp_path / "folder.png")
