"""Home: the three ways to train a classifier on a pretrained network, and the app's steps."""

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore.models import Strategy
from ui import charts, i18n
from ui.i18n import t


def strategy_section(strategy: str, explanation: str) -> None:
    """One strategy: its name, a few sentences, and the network with its frozen part shaded."""
    with st.container(border=True):
        st.subheader(i18n.strategy_label(strategy))
        st.markdown(explanation)
        st.altair_chart(charts.network_diagram(strategy, i18n.chart_labels()), width="stretch")


def step_card(column: DeltaGenerator, page: str, title: str, text: str) -> None:
    with column.container(border=True):
        st.page_link(page, label=title)
        st.caption(text)


st.title(t("home.title"))
st.markdown(t("home.intro"))

strategy_section(Strategy.TRANSFER, t("home.transfer"))
strategy_section(Strategy.FINETUNE, t("home.finetune"))
strategy_section(Strategy.SCRATCH, t("home.scratch"))

st.subheader(t("home.steps_title"))
data_col, model_col, train_col, compare_col, evaluate_col = st.columns(5)
step_card(data_col, "app_pages/data.py", t("nav.data"), t("home.step_data"))
step_card(model_col, "app_pages/model.py", t("nav.model"), t("home.step_model"))
step_card(train_col, "app_pages/train.py", t("nav.train"), t("home.step_train"))
step_card(compare_col, "app_pages/compare.py", t("nav.compare"), t("home.step_compare"))
step_card(evaluate_col, "app_pages/evaluate.py", t("nav.evaluate"), t("home.step_evaluate"))
