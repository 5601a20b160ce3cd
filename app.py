"""Transfer learning and fine-tuning of image classifiers, in the browser: `streamlit run app.py`.

This script only sets up what every page shares: the page configuration, the session's state and
language, the workspace, the navigation and the sidebar. Each page in `app_pages/` is a short script
over `tlcore`; training itself runs in its own process (`tlcore.runs.start`).

The pages folder is deliberately not called `pages/`: Streamlit still treats a `pages/` folder beside
the entry script as its legacy multipage app until some session has called `st.navigation`, so the
first visit after a server start (and every `AppTest` run) would run a page without this script.
"""

from pathlib import Path

import streamlit as st

from tlcore.errors import TLCoreError
from ui import cached, collector, i18n, links, sidebar, state
from ui.i18n import t

# The tab's icon is a file of our own: a Material icon name here makes every browser fetch its picture
# from fonts.gstatic.com.
ICON = str(Path(__file__).parent / "ui" / "icon.png")
st.set_page_config(page_title="Transfer Learning Studio", page_icon=ICON, layout="wide")
cached.leave_keras_alone()
state.init_state()
state.heal_choices()

navigation = st.navigation(
    [
        st.Page("app_pages/home.py", title=t("nav.home"), icon=":material/home:", url_path="home", default=True),
        st.Page("app_pages/data.py", title=t("nav.data"), icon=":material/folder_open:", url_path="data"),
        st.Page("app_pages/model.py", title=t("nav.model"), icon=":material/account_tree:", url_path="model"),
        st.Page("app_pages/train.py", title=t("nav.train"), icon=":material/model_training:", url_path="train"),
        st.Page("app_pages/compare.py", title=t("nav.compare"), icon=":material/compare_arrows:", url_path="compare"),
        st.Page("app_pages/evaluate.py", title=t("nav.evaluate"), icon=":material/fact_check:", url_path="evaluate"),
    ]
)

try:
    workspace = state.workspace()
except TLCoreError as exc:
    st.error(i18n.error_text(exc))
    st.stop()

if restored := links.restore(workspace):
    st.toast(t("links.restored"), icon=":material/link:")
sidebar.controls(workspace)
navigation.run()
links.publish()
sidebar.summary(workspace)
collector.settle()
